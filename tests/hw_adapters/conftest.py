"""Fixtures for the hardware-adapter tests: emulated servo buses on pseudo-terminals."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import NamedTuple

import pytest

from hw_adapters.emulator import EmulatorServer
from sim_models.servo.device import VirtualServo

_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0
# With every core busy a pty delivers replies milliseconds late, which a real bus adapter does
# not: our buses over the emulator wait this much longer before taking silence for absence.
LOADED_MARGIN_MS = 10


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "realtime: runs on the wall clock; its tolerances hold with every core busy"
    )


class Emulator(NamedTuple):
    """A running emulator: the link a bus opens (a str path) and the server behind it.

    Unpacks as ``path, server = emulator(...)``.
    """

    path: str
    server: EmulatorServer

    def servo(self, servo_id: int) -> VirtualServo:
        """The emulated servo with `servo_id` (the object the physics steps)."""
        return self.server.devices.servos[servo_id]

    def url(self, **options: object) -> str:
        """The bus URL of this emulator, with the margin a busy machine needs, and `options`."""
        protocol = getattr(self.server.protocol, "name", self.server.protocol)
        query = {"baud": self.server.baud, "timeout_ms": LOADED_MARGIN_MS, **options}
        return f"{protocol}://{self.path}?" + "&".join(f"{k}={v}" for k, v in query.items())


StartEmulator = Callable[..., Emulator]


class _Running:
    def __init__(self) -> None:
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.server: EmulatorServer | None = None
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None


def _serve(run: _Running, protocol: str, model: str, robot: str, link: str, **server_args: object) -> None:
    # Everything PyBullet lives in this thread: one client per thread, built and closed here.
    from servo_core.catalogue import servo_spec
    from sim_models.plant import Mount, Plant
    from sim_models.robots import actuated_joints, robot_urdf_text

    plant = None
    try:
        urdf = robot_urdf_text(robot)
        spec = servo_spec(model)
        mounts = [Mount(j, VirtualServo(spec, i)) for i, j in enumerate(actuated_joints(urdf), 1)]
        plant = Plant(urdf, mounts)
        server = EmulatorServer(plant, protocol, **server_args)  # type: ignore[arg-type]
        try:
            server.link(link)
            run.server = server
            run.ready.set()
            server.serve(run.stop)
        finally:
            server.close()
    except BaseException as exc:  # reported by the fixture, in the test that started it
        run.error = exc
    finally:
        if plant is not None:
            plant.close()
        run.ready.set()


@pytest.fixture
def emulator(tmp_path) -> Iterator[StartEmulator]:
    """A factory: ``emulator(protocol, model, robot, wire_timing=False, baud=1_000_000)``.

    Starts an EmulatorServer thread on a plant of `robot` with one `model` servo per
    actuated joint (ids 1..n) and returns an Emulator (link path, server) once it
    answers. Every emulator started is stopped and joined when the test ends, pass or
    fail; an exception in an emulator thread fails the test that started it.
    """
    runs: list[_Running] = []

    def start(
        protocol: str, model: str, robot: str, wire_timing: bool = False, baud: int = 1_000_000
    ) -> Emulator:
        run = _Running()
        runs.append(run)
        link = str(tmp_path / f"emu-{protocol}-{len(runs)}")
        run.thread = threading.Thread(
            target=_serve,
            args=(run, protocol, model, robot, link),
            kwargs={"wire_timing": wire_timing, "baud": baud},
            name=f"emulator-{protocol}-{len(runs)}",
            daemon=True,
        )
        run.thread.start()
        if not run.ready.wait(_START_TIMEOUT_S):
            raise RuntimeError(f"the {protocol} emulator did not start within {_START_TIMEOUT_S} s")
        if run.error is not None or run.server is None:
            raise RuntimeError(f"the {protocol} emulator failed to start") from run.error
        return Emulator(link, run.server)

    try:
        yield start
    finally:
        for run in runs:
            run.stop.set()
        stuck = []
        for run in runs:
            if run.thread is not None:
                run.thread.join(_STOP_TIMEOUT_S)
                if run.thread.is_alive():
                    stuck.append(run.thread.name)
        errors = [run.error for run in runs if run.error is not None and run.server is not None]
    assert not stuck, f"emulator threads did not stop: {stuck}"
    if errors:
        raise RuntimeError(f"an emulator thread raised {errors[0]!r}") from errors[0]
