"""A ServoBus wrapper that injects bus faults: corrupt replies and servos that stop answering.

Faults act where a real bus would show them, whatever bus is wrapped, and the wrapper
reacts to them by the serial buses' rules (`hw_adapters.serial_bus`), with the same
settings and counters:

- `inject_errors(rate, rng)`: each state read and each goal write is hit by noise on the
  line with probability `rate`, drawn from `rng` (one draw per attempt, so runs repeat).
  A read whose reply is corrupt counts as a failed attempt (`checksum_errors`,
  `no_reply`) and is retried up to `retries` times (`retries`); each attempt takes its
  wire time. When every attempt fails it raises ChecksumError, and each servo of the read
  counts a missed transaction. A sync write gets no reply, so a corrupt one is lost
  without anyone noticing, as on a serial bus: the servos keep their old goals and no
  error is raised. Both count as `errors_injected`.
- `disconnect(servo_id)`: the servo no longer answers. A read that needs it fails the
  same way (NoReplyError once retries are spent; the other servos' replies still take
  their wire time), a write does not reach it, a ping gets no answer.

A servo that misses `fail_after` reads in a row is marked failed: every later read or
goal write that needs it raises ServoFailedError at once, as the serial buses do, and it
stays failed (reconnecting does not clear the mark). An answer before that resets its
count. `retries` and `fail_after` default to the wrapped bus's own settings (a
`sim://?retries=3&fail_after=8` bus, a serial bus), else to the serial buses' defaults.

Pings and torque writes are not hit by noise. Each injection returns a function that
undoes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from hw_adapters.base import (
    BusError,
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

__all__ = ["DEFAULT_FAIL_AFTER", "DEFAULT_RETRIES", "FaultInjectingBus", "WireTimed", "check_policy"]

DEFAULT_RETRIES = 2
"""Retries of a failed transaction, as the serial buses' `retries` option."""
DEFAULT_FAIL_AFTER = 5
"""Missed transactions in a row before a servo is marked failed, as the serial buses' `fail_after`."""

Undo = Callable[[], None]


@runtime_checkable
class WireTimed(Protocol):
    """A bus that can tell how long a goal write takes on its wire without sending it."""

    def goal_write_time(self, n_servos: int) -> float: ...


def check_policy(retries: int, fail_after: int) -> None:
    """ConfigError unless `retries` >= 0 and `fail_after` >= 1 (the serial buses' rule)."""
    if isinstance(retries, bool) or isinstance(fail_after, bool) or retries < 0 or fail_after < 1:
        raise ConfigError(f"retries must be >= 0 and fail_after >= 1, got {retries}, {fail_after}")


def _setting(inner: ServoBus, name: str, given: int | None, default: int) -> int:
    if given is not None:
        return given
    own = getattr(inner, name, None)
    return own if isinstance(own, int) and not isinstance(own, bool) else default


class FaultInjectingBus(ServoBus):
    """`inner` with faults injected on demand; without any it behaves exactly as `inner`."""

    def __init__(self, inner: ServoBus, *, retries: int | None = None, fail_after: int | None = None) -> None:
        # Looked up once: an isinstance against a runtime Protocol costs ~15 µs, every cycle.
        self._wire_timed = isinstance(inner, WireTimed)
        self.retries = _setting(inner, "retries", retries, DEFAULT_RETRIES)
        self.fail_after = _setting(inner, "fail_after", fail_after, DEFAULT_FAIL_AFTER)
        check_policy(self.retries, self.fail_after)
        self.inner = inner
        self.last_duration_s = 0.0
        self._error_rate = 0.0
        self._rng: np.random.Generator | None = None
        self._disconnected: set[int] = set()
        self._failed: set[int] = set()
        self._misses: dict[int, int] = {}
        self._own = BusSnapshot()

    # -- injection ---------------------------------------------------------------------------
    def inject_errors(self, rate: float, rng: np.random.Generator) -> Undo:
        """Corrupt reads and writes at `rate` (0..1), drawing from `rng`. Returns the undo."""
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
        """Servos marked failed after `fail_after` missed reads in a row."""
        return frozenset(self._failed)

    # -- helpers ---------------------------------------------------------------------------
    def _count(self, **more: int) -> None:
        own = self._own
        self._own = replace(own, **{k: getattr(own, k) + n for k, n in more.items()})

    def _noise(self) -> bool:
        return self._error_rate > 0.0 and self._rng is not None and self._rng.random() < self._error_rate

    def _missed(self, ids: Iterable[int]) -> None:
        for i in ids:
            self._misses[i] = self._misses.get(i, 0) + 1
            if self._misses[i] >= self.fail_after:
                self._failed.add(i)

    # -- ServoBus ---------------------------------------------------------------------------
    def ping(self, servo_id: int) -> PingInfo | None:
        # A probe, as on the serial buses: it never marks a servo failed nor clears the mark.
        info = self.inner.ping(servo_id)
        self.last_duration_s = self.inner.last_duration_s
        if servo_id in self._disconnected:
            if info is not None:  # the wrapped bus heard an answer that never came
                self._count(no_reply=1)
            return None
        return info

    def read_states(self, ids: Iterable[int]) -> dict[int, ServoState]:
        ids = list(ids)
        failed = self._failed.intersection(ids)
        if failed:  # refused before anything is sent
            self.last_duration_s = 0.0
            raise ServoFailedError(failed)
        if not self._disconnected and not self._error_rate:  # nothing injected: the wrapped bus
            try:
                states = self.inner.read_states(ids)
            finally:
                self.last_duration_s = self.inner.last_duration_s
            if self._misses:
                for i in ids:
                    self._misses[i] = 0
            return states
        if not ids:  # nothing to answer, nothing to corrupt
            states = self.inner.read_states(ids)
            self.last_duration_s = self.inner.last_duration_s
            return states
        spent = 0.0
        problem: BusError = NoReplyError(f"no reply from servo(s) {ids}")
        missing: list[int] = []
        for attempt in range(1 + self.retries):
            if attempt:
                self._count(retries=1)
            corrupt = self._noise()
            silent = [i for i in ids if i in self._disconnected]
            # The whole read goes out and the servos answer (or the bus waits as long for
            # the silent ones): every attempt takes the wire time of a full reply.
            try:
                states = self.inner.read_states(ids)
            finally:
                spent += self.inner.last_duration_s
                self.last_duration_s = spent
            if not corrupt and not silent:
                for i in ids:
                    self._misses[i] = 0
                return states
            self._count(no_reply=1)
            if corrupt:  # every status packet of the reply fails its checksum
                self._count(checksum_errors=len(ids), errors_injected=1)
                missing = ids
                problem = ChecksumError(f"corrupt reply from servo(s) {ids} (injected bus error)")
            else:
                missing = silent
                problem = NoReplyError(f"servo(s) {silent} did not answer (no status packet)")
        self._missed(missing)
        raise problem

    def write_goals(self, goals: Mapping[int, float]) -> None:
        failed = self._failed.intersection(goals)
        if failed:
            self.last_duration_s = 0.0
            raise ServoFailedError(failed)
        if goals and self._noise():
            # The servos drop a corrupt instruction; a sync write has no reply to tell.
            self._count(transactions=1, errors_injected=1)
            self.last_duration_s = self._write_time(len(goals))
            return
        silent = self._disconnected
        self.inner.write_goals({i: goal for i, goal in goals.items() if i not in silent} if silent else goals)
        self.last_duration_s = max(self.inner.last_duration_s, self._write_time(len(goals)))

    def _write_time(self, n_servos: int) -> float:
        """Wire time of a goal write to `n_servos`, when the wrapped bus can tell without sending it."""
        return self.inner.goal_write_time(n_servos) if self._wire_timed else 0.0  # type: ignore[attr-defined]

    def set_torque(self, ids: Iterable[int], enabled: bool) -> None:
        # A sync write: a silent servo just does not get it.
        self.inner.set_torque([i for i in ids if i not in self._disconnected], enabled)
        self.last_duration_s = self.inner.last_duration_s

    def arm_watchdog(self, ids: Iterable[int], timeout_s: float) -> bool:
        armed = self.inner.arm_watchdog([i for i in ids if i not in self._disconnected], timeout_s)
        self.last_duration_s = self.inner.last_duration_s
        return armed

    def disarm_watchdog(self, ids: Iterable[int]) -> None:
        self.inner.disarm_watchdog([i for i in ids if i not in self._disconnected])
        self.last_duration_s = self.inner.last_duration_s

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
