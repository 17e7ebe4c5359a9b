"""Rate limiter in the manner of resilience4j's, on the runtime's clock.

Time is cut into periods of `refresh_period_s` aligned to t = 0; at each period
boundary the permissions refill to `limit_for_period` (unused ones do not
accumulate). A caller finding none left reserves one in the next period that
still has room and waits for its boundary, if that is within `timeout_s`;
otherwise it is refused at once with RateLimited and reserves nothing.
Reservations are kept as negative permissions, so the waiting callers of one
period number at most `limit_for_period` and resume in arrival order.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import simpy

from servo_core.errors import ConfigError, TwinError
from twin.patterns.timeouts import CallFactory, EventSink, emit, require_duration

__all__ = ["RateLimited", "RateLimiter", "RateLimiterSnapshot", "T"]

T = TypeVar("T")

# Virtual times reached by adding delays may miss a period boundary by an ulp or so.
_EPS = 1e-9


class RateLimited(TwinError):
    """No permission within the rate limiter's timeout."""


@dataclass(frozen=True)
class RateLimiterSnapshot:
    name: str
    permitted: int  # permissions handed out (at once or after a wait)
    waited: int  # of those, the ones that had to wait for a refresh
    rejected: int
    waiting: int  # callers waiting for a refresh now
    available_permissions: int  # left in the current period now (negative: reserved)


class RateLimiter:
    """`limit_for_period` permissions per `refresh_period_s`; waits up to `timeout_s` for the next ones."""

    def __init__(
        self,
        env: simpy.Environment,
        limit_for_period: int,
        refresh_period_s: float,
        timeout_s: float = 0.0,
        name: str = "",
        on_event: EventSink | None = None,
    ) -> None:
        if isinstance(limit_for_period, bool) or not isinstance(limit_for_period, int):
            raise ConfigError(f"limit_for_period must be an int, got {limit_for_period!r}")
        if limit_for_period < 1:
            raise ConfigError(f"limit_for_period must be >= 1, got {limit_for_period}")
        refresh_period_s = require_duration(refresh_period_s, "refresh_period_s", allow_inf=False)
        if refresh_period_s <= 0:
            raise ConfigError("refresh_period_s must be > 0")
        self.env = env
        self.limit_for_period = limit_for_period
        self.refresh_period_s = refresh_period_s
        self.timeout_s = require_duration(timeout_s, "timeout_s")
        self.name = name or "rate_limiter"
        self.on_event = on_event
        self._cycle = self._cycle_at(env.now)
        self._permissions = limit_for_period  # < 0: that many reserved in periods to come
        self.permitted = 0  # permissions handed out (at once or after a wait)
        self.waited = 0  # of those, the ones that had to wait for a refresh
        self.rejected = 0
        self.waiting = 0  # callers waiting for a refresh now

    def _cycle_at(self, t: float) -> int:
        return math.floor(t / self.refresh_period_s + _EPS)

    def _refresh(self) -> None:
        cycle = self._cycle_at(self.env.now)
        if cycle > self._cycle:
            refill = (cycle - self._cycle) * self.limit_for_period
            self._permissions = min(self._permissions + refill, self.limit_for_period)
            self._cycle = cycle

    @property
    def available_permissions(self) -> int:
        """Permissions left in the current period (negative: reserved by waiting callers)."""
        self._refresh()
        return self._permissions

    def next_refresh(self) -> float:
        """When the next period starts (s)."""
        self._refresh()
        return (self._cycle + 1) * self.refresh_period_s

    def snapshot(self) -> RateLimiterSnapshot:
        return RateLimiterSnapshot(
            self.name, self.permitted, self.waited, self.rejected, self.waiting, self.available_permissions
        )

    def try_acquire(self) -> bool:
        """Take a permission now if one is left; never waits."""
        self._refresh()
        if self._permissions > 0:
            self._permissions -= 1
            self.permitted += 1
            return True
        self.rejected += 1
        emit(self.on_event, self.env, self.name, "rejected", "none left, no wait")
        return False

    def acquire(self) -> Generator[simpy.Event, Any, None]:
        """``yield from limiter.acquire()``: a permission now, or after waiting for a refresh.

        Raises RateLimited at once when the permission would come later than timeout_s.
        """
        self._refresh()
        if self._permissions > 0:
            self._permissions -= 1
            self.permitted += 1
            return
        # Permissions at the start of period cycle+n: permissions + n*limit (reservations counted).
        periods = -(-(1 - self._permissions) // self.limit_for_period)  # ceil
        wait = max(0.0, (self._cycle + periods) * self.refresh_period_s - self.env.now)
        if wait > self.timeout_s + _EPS:
            self.rejected += 1
            emit(self.on_event, self.env, self.name, "rejected", f"next permission in {wait * 1000:.0f} ms")
            raise RateLimited(
                f"{self.name}: no permission within {self.timeout_s * 1000:.0f} ms "
                f"(next in {wait * 1000:.0f} ms)"
            )
        self._permissions -= 1  # reserved
        self.waiting += 1
        emit(self.on_event, self.env, self.name, "waiting", f"{wait * 1000:.0f} ms")
        try:
            yield self.env.timeout(wait)
        except BaseException:
            self._permissions += 1  # an interrupted waiter gives its reservation back
            raise
        finally:
            self.waiting -= 1
        self.permitted += 1
        self.waited += 1

    def call(self, factory: CallFactory[T]) -> Generator[simpy.Event, Any, T]:
        """``result = yield from limiter.call(factory)``: acquire, then run the call."""
        yield from self.acquire()
        return (yield from factory())
