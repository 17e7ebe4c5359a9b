"""`twin emulate` plays the scenario's `faults:` timeline on its servos, on the wall clock.

The emulator is the "hardware" of a bench test: a fault injected here (an overload, a servo
overheating, a noisy encoder) is one the client cannot see coming, which is what a shadow twin
(`twin run --bus … --shadow`) is there to notice. Times count from the first byte a client
sends, so that a run started a little after the emulator sees the faults when its scenario
says. Faults on services, links and the registry have nothing to act on here and are listed
as skipped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from servo_core.errors import ConfigError
from sim_models.plant import Plant
from sim_models.servo.device import VirtualServo
from twin.assembly import timed_fault
from twin.scenario.models import EncoderNoise, Scenario, ServoOverheat, ServoOverload

__all__ = ["EMULATED_FAULTS", "EmulatedFaults"]

EMULATED_FAULTS = (ServoOverload, ServoOverheat, EncoderNoise)
"""The fault types `twin emulate` plays; the others act on what only a twin run has."""


@dataclass
class _Servos:
    """The FaultTargets an emulator offers: its servos, nothing else."""

    plant: Plant

    def servo(self, servo_id: int) -> VirtualServo:
        try:
            return self.plant.servo(servo_id)
        except KeyError:
            raise ConfigError(f"the emulator has no servo {servo_id}") from None

    def catch_up(self) -> None:
        pass  # the server keeps its plant up to the wall clock itself

    def fault_injected(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        raise ConfigError(f"{name}: not something an emulator's fault can act on")


class EmulatedFaults:
    """Plays the servo faults of `scenario` on `plant`: a thread keeps the time and hands each
    change to `execute` (the emulator's `call_soon`, so that it happens on the thread that runs
    the physics); `started()` says when the first byte arrived (polled every 5 ms), `log`
    receives one line per fault applied or undone."""

    def __init__(
        self,
        scenario: Scenario,
        plant: Plant,
        started: Callable[[], bool],
        log: Callable[[str], None],
        seed: int | None = None,
        execute: Callable[[Callable[[], None]], None] = lambda fn: fn(),
    ) -> None:
        seed = scenario.seed if seed is None else seed
        self.skipped = [f.type for f in scenario.faults if not isinstance(f, EMULATED_FAULTS)]
        self._faults = [
            (f, timed_fault(f, k, seed))
            for k, f in enumerate(scenario.faults)
            if isinstance(f, EMULATED_FAULTS)
        ]
        self._targets = _Servos(plant)
        self._started = started
        self._log = log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, name="emulated-faults", daemon=True)
        self._execute = execute
        self._undos: dict[int, Callable[[], None]] = {}
        self.applied = 0

    def start(self) -> None:
        if self._faults:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)

    def _play(self) -> None:
        while not self._started():
            if self._stop.wait(0.005):
                return
        t0 = time.monotonic()  # wall-clock ok: the emulator runs on the wall clock
        # (when, what, fault index, True to apply / False to undo), in time order
        due = sorted(
            (timed.at_s, f"{fault.type} on servo {fault.servo}", k, True)
            for k, (fault, timed) in enumerate(self._faults)
        )
        while due and not self._stop.is_set():
            now = time.monotonic() - t0  # wall-clock ok
            while due and due[0][0] <= now:
                at, what, k, apply = due.pop(0)
                self._execute(self._change(k, apply))
                self._log(f"{now:.3f} s: {what}" + ("" if apply else " ends"))
                duration = self._faults[k][1].duration_s
                if apply and duration is not None:
                    due.append((at + duration, what, k, False))
                    due.sort()
            self._stop.wait(0.002)

    def _change(self, k: int, apply: bool) -> Callable[[], None]:
        def change() -> None:
            if apply:
                action = self._faults[k][1].action
                assert action is not None
                undo = action(self._targets)
                self.applied += 1
                if undo is not None:
                    self._undos[k] = undo
            elif k in self._undos:
                self._undos.pop(k)()

        return change
