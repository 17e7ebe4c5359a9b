"""A bench rig for tests: a scenario's servos served by an in-process emulator (a thread), so a
test can look at the "hardware" (torque, positions) while `twin run --bus` drives it from
another process."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sim_models.plant import Plant

ROOT = Path(__file__).resolve().parents[2]


class Rig:
    def __init__(self, plant: Plant, link: Path) -> None:
        self.plant = plant
        self.link = link
        self.fault_log: list[str] = []

    def torque(self) -> dict[int, bool]:
        return {s.servo_id: s.torque_enabled for s in self.plant.servos}

    def positions(self) -> dict[int, float]:
        return {s.servo_id: s.position for s in self.plant.servos}


@contextmanager
def bench(scenario: Path, tmp: Path, protocol: str = "dynamixel", faults: bool = False) -> Iterator[Rig]:
    """Serve `scenario`'s servos on a pseudo-terminal linked at tmp/link until the block ends;
    with `faults`, play the scenario's servo faults as `twin emulate` does (rig.fault_log)."""
    from hw_adapters.emulator import EmulatorServer
    from twin.assembly import build_plant
    from twin.emulation import EmulatedFaults
    from twin.scenario import load_scenario

    ready, stop = threading.Event(), threading.Event()
    box: dict[str, object] = {}
    link = tmp / "link"

    def serve() -> None:  # PyBullet lives in this thread: built, run and closed here
        try:
            loaded = load_scenario(scenario)
            plant, _ = build_plant(loaded)
            try:
                server = EmulatorServer(plant, protocol)
                rig = Rig(plant, link)
                played = EmulatedFaults(
                    loaded,
                    plant,
                    lambda: server.stats.bytes_in > 0,
                    rig.fault_log.append,
                    execute=server.call_soon,
                )
                try:
                    server.link(link)
                    box["rig"] = rig
                    ready.set()
                    if faults:
                        played.start()
                    server.serve(stop)
                finally:
                    played.stop()
                    server.close()
            finally:
                plant.close()
        except BaseException as exc:
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(30), "the emulator did not start"
    if "error" in box:
        raise AssertionError(f"the emulator failed: {box['error']!r}")
    try:
        yield box["rig"]  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(10)


def start_run(*args: str, cwd: Path = ROOT) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "twin", "run", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate, timeout_s: float = 60.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")
