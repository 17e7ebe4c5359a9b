"""A ServoBus wrapper that injects bus faults: corrupt replies and servos that stop answering.

Faults act where a real bus would show them, whatever bus is wrapped:

- `inject_errors(rate, rng)`: each state read or goal write is lost to noise
  on the line with probability `rate` and raises ChecksumError; nothing reaches
  the servos. Counted as `errors_injected` (reads also as `checksum_errors`).
- `disconnect(servo_id)`: the servo no longer answers. A read that needs it
  raises NoReplyError; after `fail_after` such reads in a row it is marked
  failed and every later read or goal write that needs it raises
  ServoFailedError, as the serial buses do. A ping gets no answer from it
  and never marks it failed. Reconnecting does not clear the failed mark.

Each injection returns a function that undoes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from hw_adapters.base import (
    BusSnapshot,
    ChecksumError,
    ConfigError,
    NoReplyError,
    PingInfo,
    ServoBus,
    ServoFailedError,
    ServoState,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = ["FaultInjectingBus"]

Undo = Callable[[], None]


class FaultInjectingBus(ServoBus):
    """`inner` with faults injected on demand; without any it behaves exactly as `inner`."""

    def __init__(self, inner: ServoBus, *, fail_after: int = 5) -> None:
        if fail_after < 1:
            raise ConfigError(f"fail_after must be >= 1, got {fail_after}")
        self.inner = inner
        self.fail_after = fail_after
        self.last_duration_s = 0.0
        self._error_rate = 0.0
        self._rng: np.random.Generator | None = None
        self._disconnected: set[int] = set()
        self._failed: set[int] = set()
        self._misses: dict[int, int] = {}
        self._own = BusSnapshot()

    # -- injection ---------------------------------------------------------------------------
    def inject_errors(self, rate: float, rng: np.random.Generator) -> Undo:
        """Lose reads and writes at `rate` (0..1), drawing from `rng`. Returns the undo."""
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"an error rate is a probability in [0, 1], got {rate!r}")
        before = (self._error_rate, self._rng)
        self._error_rate, self._rng = rate, rng

        def undo() -> None:
            self._error_rate, self._rng = before

        return undo

    def disconnect(self, servo_id: int) -> Undo:
        """Servo `servo_id` stops answering. Returns the undo (which reconnects it)."""
        self._disconnected.add(servo_id)

        def undo() -> None:
            self._disconnected.discard(servo_id)

        return undo

    @property
    def failed(self) -> frozenset[int]:
        """Servos marked failed after too many missed reads."""
        return frozenset(self._failed)

    # -- helpers ---------------------------------------------------------------------------
    def _count(self, **more: int) -> None:
        own = self._own
        self._own = replace(own, **{k: getattr(own, k) + n for k, n in more.items()})

    def _noise(self) -> bool:
        return self._error_rate > 0.0 and self._rng is not None and self._rng.random() < self._error_rate

    # -- ServoBus ---------------------------------------------------------------------------
    def ping(self, servo_id: int) -> PingInfo | None:
        if servo_id in self._disconnected:
            self.last_duration_s = 0.0
            return None
        info = self.inner.ping(servo_id)
        self.last_duration_s = self.inner.last_duration_s
        return info

    def read_states(self, ids: Iterable[int]) -> dict[int, ServoState]:
        ids = list(ids)
        failed = self._failed.intersection(ids)
        if failed:
            self._count(transactions=1)
            raise ServoFailedError(failed)
        silent = [i for i in ids if i in self._disconnected]
        if silent:
            self._count(transactions=1, no_reply=1)
            for i in silent:
                self._misses[i] = self._misses.get(i, 0) + 1
                if self._misses[i] >= self.fail_after:
                    self._failed.add(i)
            # The servos still connected answer before the bus times out on the others.
            answering = [i for i in ids if i not in self._disconnected]
            if answering:
                self.inner.read_states(answering)
            self.last_duration_s = self.inner.last_duration_s if answering else 0.0
            raise NoReplyError(f"servo(s) {silent} did not answer (no status packet)")
        for i in ids:
            self._misses[i] = 0
        if self._noise():
            self._count(transactions=1, checksum_errors=1, errors_injected=1)
            raise ChecksumError("corrupt reply (injected bus error)")
        states = self.inner.read_states(ids)
        self.last_duration_s = self.inner.last_duration_s
        return states

    def write_goals(self, goals: Mapping[int, float]) -> None:
        failed = self._failed.intersection(goals)
        if failed:
            raise ServoFailedError(failed)
        self._refuse_silent(goals)
        if self._noise():
            self._count(errors_injected=1)
            raise ChecksumError("corrupt instruction (injected bus error)")
        self.inner.write_goals(goals)
        self.last_duration_s = self.inner.last_duration_s

    def set_torque(self, ids: Iterable[int], enabled: bool) -> None:
        ids = list(ids)
        self._refuse_silent(ids)
        self.inner.set_torque(ids, enabled)
        self.last_duration_s = self.inner.last_duration_s

    def _refuse_silent(self, ids: Iterable[int]) -> None:
        silent = sorted(self._disconnected.intersection(ids))
        if silent:
            raise NoReplyError(f"servo(s) {silent} did not answer (no status packet)")

    def snapshot(self) -> BusSnapshot:
        inner, own = self.inner.snapshot(), self._own
        return BusSnapshot(
            inner.transactions + own.transactions,
            inner.retries + own.retries,
            inner.no_reply + own.no_reply,
            inner.checksum_errors + own.checksum_errors,
            inner.wrong_id + own.wrong_id,
            inner.status_errors + own.status_errors,
            inner.errors_injected + own.errors_injected,
        )

    def wait(self, seconds: float) -> None:
        self.inner.wait(seconds)

    def close(self) -> None:
        self.inner.close()
