"""The wall clock as a SimPy environment, for runs against real servos.

Hardware-in-the-loop runs use the same kernel as virtual runs, stepped in
real time (non-strict: a late event runs late instead of failing the run).
Every event's lateness is recorded, so a run reports how well the machine
kept up with the wall clock.
"""

from __future__ import annotations

from array import array

from simpy.core import EmptySchedule, Environment, Infinity
from simpy.rt import RealtimeEnvironment, monotonic, sleep

__all__ = ["WallClockEnvironment"]


class WallClockEnvironment(RealtimeEnvironment):
    """A non-strict real-time environment that measures how late events run (s)."""

    def __init__(self, lateness_budget_s: float = 0.005) -> None:
        super().__init__(initial_time=0.0, factor=1.0, strict=False)
        self.lateness_budget_s = lateness_budget_s
        self.lateness_s = array("d")  # 8 bytes an event: a long run's list of floats would not be
        self.over_budget = 0

    def real_now(self) -> float:
        """Seconds of wall time since the run started (the clock's `now` is the scheduled time)."""
        return self.env_start + (monotonic() - self.real_start) / self.factor  # wall-clock ok

    def step(self) -> None:
        evt_time = self.peek()
        if evt_time is Infinity:
            raise EmptySchedule
        due = self.real_start + (evt_time - self.env_start) * self.factor
        delta = due - monotonic()  # wall-clock ok: this is the real-time clock itself
        if delta > 0:
            sleep(delta)  # wall-clock ok
        late = monotonic() - due  # wall-clock ok
        self.lateness_s.append(late)
        if late > self.lateness_budget_s:
            self.over_budget += 1
        Environment.step(self)
