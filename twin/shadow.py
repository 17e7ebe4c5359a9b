"""The shadow twin: the twin runs beside real servos, fed the same goals at the same times.

`ShadowBus` sits between the bus owner and the real bus (the `wrap_bus` seam). Every goal and
torque write goes to the real servos and to the twin's (a `sim://` bus over a plant of the
same scenario, on the run's wall clock); every read of the real servos also reads the twin.
Per joint it records the goal, the hardware's and the twin's position, and a divergence
monitor raises an alarm when |hardware − twin| stays above the threshold for the window: a
servo that is overloaded, stuck or slowed shows up as the real machine parting from the
model of it. The twin starts where the real servos are (their first reading).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hw_adapters import BusError, ServoBus, ServoState
from hw_adapters.base import BusSnapshot, PingInfo
from twin.control.joints import Joint
from twin.observe.runlog import FLUSH_EVERY_S
from twin.observe.telemetry import csv_row

__all__ = ["DivergenceMonitor", "ShadowBus", "ShadowSettings"]

AlarmHook = Callable[[float, int, str], None]  # (t, servo id, what)


@dataclass(frozen=True)
class ShadowSettings:
    threshold_rad: float
    window_s: float


class DivergenceMonitor:
    """One joint: alarms once each time |delta| stays above the threshold for the window."""

    def __init__(self, settings: ShadowSettings) -> None:
        self.settings = settings
        self.since: float | None = None  # when |delta| last went above the threshold
        self.alarmed = False
        self.alarms: list[float] = []

    def update(self, t: float, delta: float) -> bool:
        if abs(delta) <= self.settings.threshold_rad:
            self.since, self.alarmed = None, False
            return False
        if self.since is None:
            self.since = t
        if not self.alarmed and t - self.since >= self.settings.window_s:
            self.alarmed = True
            self.alarms.append(t)
            return True
        return False


class ShadowBus(ServoBus):
    """The real bus, with the twin fed the same writes; see the module's doc."""

    def __init__(
        self,
        real: ServoBus,
        twin: ServoBus,
        place_twin: Callable[[dict[int, float]], None],
        joints: Sequence[Joint],
        settings: ShadowSettings,
        clock: Callable[[], float],
    ) -> None:
        self.real, self.twin = real, twin
        self._place_twin = place_twin
        self.joints = list(joints)
        self.settings = settings
        self._clock = clock
        self.on_alarm: AlarmHook | None = None
        self.on_close: Callable[[], None] | None = None  # releases the twin's plant
        self._by_id = {j.servo_id: k for k, j in enumerate(self.joints)}
        self._goal = [math.nan] * len(self.joints)
        self._placed = False
        self.monitors = [DivergenceMonitor(settings) for _ in self.joints]
        self.samples = 0
        self.twin_errors = 0
        self._sum_sq = [0.0] * len(self.joints)
        self._max_abs = [0.0] * len(self.joints)
        self.events: list[tuple[float, str, str]] = []  # (t, joint, what) for the plots
        self._file: IO[str] | None = None
        self._last_flush = time.monotonic()  # wall-clock ok: flush cadence

    def attach(self, directory: Path) -> None:
        """Stream shadow.csv into the run directory (before the run starts)."""
        self._file = (directory / "shadow.csv").open("w", encoding="utf-8", newline="\n")
        cols = ["t_s"] + [f"{j.name}_{c}_rad" for j in self.joints for c in ("goal", "hardware", "twin")]
        self._file.write(",".join(cols) + "\n")

    @property
    def last_duration_s(self) -> float:
        return self.real.last_duration_s

    @last_duration_s.setter
    def last_duration_s(self, value: float) -> None:
        pass  # the real bus's time is what the loop waits for

    # -- the bus --------------------------------------------------------------------------------
    def ping(self, servo_id: int) -> PingInfo | None:
        return self.real.ping(servo_id)

    def read_states(self, ids: Iterable[int]) -> dict[int, ServoState]:
        ids = list(ids)
        real = self.real.read_states(ids)
        if not self._placed:
            self._place_twin({i: s.position for i, s in real.items()})
            self._placed = True
        try:
            twin = self.twin.read_states(ids)
        except BusError:
            self.twin_errors += 1
            return real
        self._record(real, twin)
        return real

    def write_goals(self, goals: Mapping[int, float]) -> None:
        self.real.write_goals(goals)
        for i, g in goals.items():
            k = self._by_id.get(i)
            if k is not None:
                self._goal[k] = self.joints[k].calibration.to_joint(g)
        try:
            self.twin.write_goals(goals)
        except BusError:
            self.twin_errors += 1

    def set_torque(self, ids: Iterable[int], enabled: bool) -> None:
        ids = list(ids)
        self.real.set_torque(ids, enabled)
        try:
            self.twin.set_torque(ids, enabled)
        except BusError:
            self.twin_errors += 1

    def arm_watchdog(self, ids: Iterable[int], timeout_s: float) -> bool:
        return self.real.arm_watchdog(ids, timeout_s)

    def disarm_watchdog(self, ids: Iterable[int]) -> None:
        self.real.disarm_watchdog(ids)

    def scan(self, ids: Iterable[int] = range(0, 253)) -> list[PingInfo]:
        return self.real.scan(ids)

    def wait(self, seconds: float) -> None:
        self.real.wait(seconds)

    def snapshot(self) -> BusSnapshot:
        return self.real.snapshot()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.twin.close()
        if self.on_close is not None:
            self.on_close()
            self.on_close = None

    # -- the shadow -----------------------------------------------------------------------------
    def _record(self, real: Mapping[int, ServoState], twin: Mapping[int, ServoState]) -> None:
        t = self._clock()
        row = [t]
        for k, joint in enumerate(self.joints):
            r, w = real.get(joint.servo_id), twin.get(joint.servo_id)
            hw = joint.calibration.to_joint(r.position) if r is not None else math.nan
            tw = joint.calibration.to_joint(w.position) if w is not None else math.nan
            row += (self._goal[k], hw, tw)
            delta = hw - tw
            if math.isnan(delta):
                continue
            self._sum_sq[k] += delta * delta
            self._max_abs[k] = max(self._max_abs[k], abs(delta))
            if self.monitors[k].update(t, delta):
                what = (
                    f"shadow divergence {math.degrees(delta):+.1f}° for {self.settings.window_s * 1000:g} ms"
                )
                self.events.append((t, joint.name, what))
                if self.on_alarm is not None:
                    self.on_alarm(t, joint.servo_id, "shadow_divergence")
        self.samples += 1
        if self._file is not None:
            self._file.write(csv_row(row))
            if time.monotonic() - self._last_flush >= FLUSH_EVERY_S:  # wall-clock ok: flush cadence
                self._file.flush()
                os.fsync(self._file.fileno())
                self._last_flush = time.monotonic()  # wall-clock ok

    def metrics(self) -> dict[str, Any]:
        """The `shadow` section of metrics.json."""
        n = self.samples
        alarms = sorted(t for m in self.monitors for t in m.alarms)
        return {
            "samples": n,
            "alarms": len(alarms),
            "first_alarm_s": round(alarms[0], 6) if alarms else None,
            "threshold_deg": round(math.degrees(self.settings.threshold_rad), 6),
            "window_ms": round(self.settings.window_s * 1000.0, 6),
            "twin_errors": self.twin_errors,
            "joints": {
                j.name: {
                    "alarms": len(self.monitors[k].alarms),
                    "max_delta_deg": round(math.degrees(self._max_abs[k]), 6) if n else None,
                    "rms_delta_deg": round(math.degrees(math.sqrt(self._sum_sq[k] / n)), 6) if n else None,
                }
                for k, j in enumerate(self.joints)
            },
        }
