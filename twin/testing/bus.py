"""The `servo_bus` fixture's bus: one interface on the twin and on real servos.

Tests call `wait(seconds)` on any bus: on the twin it advances the plant's virtual time
(as do the transactions, by their wire time); on a serial bus it sleeps. A `twin_run` on
the same serial port takes the port for its run (`released()`), so the fixture's bus
closes it meanwhile and opens it again after.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from hw_adapters.base import BusError, BusSnapshot, PingInfo, ServoBus, ServoState

if TYPE_CHECKING:
    from twin.scenario.models import Scenario

__all__ = ["ClockedBus", "open_scenario_bus", "open_url_bus"]


class ClockedBus(ServoBus):
    """A ServoBus around another, whose `wait` works on every kind of bus.

    `wait(seconds)` calls `waiter` when given, else the inner bus's own clock when it has
    one (sim://, mock://), else sleeps. `spent(seconds)` hears each transaction's duration.
    """

    def __init__(
        self,
        inner: ServoBus,
        *,
        waiter: Callable[[float], None] | None = None,
        spent: Callable[[float], None] | None = None,
        reopen: Callable[[], ServoBus] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._inner: ServoBus | None = inner
        self._waiter = waiter
        self._spent = spent
        self._reopen = reopen
        self._on_close = on_close
        self._closed = False

    @property
    def inner(self) -> ServoBus:
        if self._inner is None:
            raise BusError("the bus is closed" if self._closed else "the bus is lent to a twin_run")
        return self._inner

    @property
    def last_duration_s(self) -> float:
        return self.inner.last_duration_s

    @last_duration_s.setter
    def last_duration_s(self, value: float) -> None:
        self.inner.last_duration_s = value

    def _took(self) -> None:
        if self._spent is not None:
            self._spent(self.inner.last_duration_s)

    def ping(self, servo_id: int) -> PingInfo | None:
        info = self.inner.ping(servo_id)
        self._took()
        return info

    def scan(self, ids: Iterable[int] = range(0, 253)) -> list[PingInfo]:
        found = self.inner.scan(ids)
        self._took()
        return found

    def read_states(self, ids: Iterable[int]) -> dict[int, ServoState]:
        states = self.inner.read_states(ids)
        self._took()
        return states

    def write_goals(self, goals: Mapping[int, float]) -> None:
        self.inner.write_goals(goals)
        self._took()

    def set_torque(self, ids: Iterable[int], enabled: bool) -> None:
        self.inner.set_torque(ids, enabled)
        self._took()

    def arm_watchdog(self, ids: Iterable[int], timeout_s: float) -> bool:
        armed = self.inner.arm_watchdog(ids, timeout_s)
        self._took()
        return armed

    def disarm_watchdog(self, ids: Iterable[int]) -> None:
        self.inner.disarm_watchdog(ids)
        self._took()

    def snapshot(self) -> BusSnapshot:
        return self.inner.snapshot()

    def wait(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot wait {seconds} s")
        inner = self.inner
        if self._waiter is not None:
            self._waiter(seconds)
        elif type(inner).wait is ServoBus.wait:  # a bus without a clock of its own: real servos
            time.sleep(seconds)  # wall-clock ok: real servos move on the wall clock
        else:
            inner.wait(seconds)

    @contextmanager
    def released(self) -> Iterator[None]:
        """Close the port for the block, open it again after (closing turned the torque off)."""
        if self._reopen is None or self._inner is None:
            yield
            return
        self._inner.close()
        self._inner = None
        try:
            yield
        finally:
            if not self._closed:
                self._inner = self._reopen()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._inner is not None:
                self._inner.close()
        finally:
            self._inner = None
            if self._on_close is not None:
                self._on_close()


class _VirtualClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def open_scenario_bus(scenario: Scenario) -> ClockedBus:
    """A sim:// bus over the scenario's plant (its robot, servos, mounting, initial pose), on virtual time."""
    from hw_adapters import open_bus
    from twin.assembly import build_plant

    plant, _ = build_plant(scenario)
    clock = _VirtualClock()
    try:
        inner = open_bus(f"sim://?baud={scenario.plant.bus.baud}", plant=plant, clock=clock.now)
    except BaseException:
        plant.close()
        raise
    return ClockedBus(inner, waiter=clock.advance, spent=clock.advance, on_close=plant.close)


def open_url_bus(url: str, scenario: Scenario | None = None, *, exclusive: bool = True) -> ClockedBus:
    """The bus at `url`; with a scenario, ConfigError unless every servo of it answers as its model.

    `exclusive`: the bus holds a port that a run on the same URL needs (`released()` gives it up).
    """
    from hw_adapters import open_bus
    from twin.assembly import open_checked_bus

    def connect() -> ServoBus:
        return open_bus(url) if scenario is None else open_checked_bus(url, scenario)

    return ClockedBus(connect(), reopen=connect if exclusive else None)
