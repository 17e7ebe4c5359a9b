"""A circuit breaker with the semantics users know from resilience4j, clocked by the runtime.

Every time is in seconds on the clock passed as ``now`` (``lambda: env.now`` in a SimPy run,
a monotonic wall clock elsewhere); the breaker never reads a clock of its own. Time-driven
transitions (automatic OPEN -> HALF_OPEN, the HALF_OPEN time limit) are applied lazily, whenever
the breaker is used or looked at, and are stamped with the moment they fell due, so the timeline
does not depend on how often anyone looks.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from servo_core.errors import ConfigError, TwinError

__all__ = [
    "BreakerConfig",
    "BreakerConfigError",
    "BreakerSnapshot",
    "CallNotPermitted",
    "CircuitBreaker",
    "State",
    "Transition",
    "WindowType",
]


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    DISABLED = "disabled"
    FORCED_OPEN = "forced_open"


class WindowType(enum.Enum):
    COUNT_BASED = "count_based"
    TIME_BASED = "time_based"


class BreakerConfigError(ConfigError, ValueError):
    """A bad BreakerConfig field: a ConfigError like the other patterns', and a ValueError."""


def _real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class BreakerConfig:
    """How a breaker judges calls. Rates are percentages, durations and waits seconds.

    A COUNT_BASED window holds the last ``window_size`` calls; a TIME_BASED one the calls that
    completed in the last ``window_size`` whole seconds (one bucket per second of completion
    time). As in resilience4j, a COUNT_BASED window never asks for more than ``window_size``
    calls: its effective minimum is ``min(minimum_calls, window_size)``.
    """

    window_type: WindowType = WindowType.COUNT_BASED
    window_size: int = 100  # calls (COUNT_BASED) or whole seconds (TIME_BASED)
    minimum_calls: int = 100  # calls recorded in the window before rates count
    failure_rate_threshold: float = 50.0  # percent; opens when the rate >= threshold
    slow_call_rate_threshold: float = 100.0  # percent; opens when the rate >= threshold
    slow_call_duration_s: float = 60.0  # a call taking >= this is slow
    wait_in_open_s: float = 60.0
    automatic_half_open: bool = False  # False: OPEN -> HALF_OPEN on the first call after the wait
    permitted_calls_in_half_open: int = 10
    max_wait_in_half_open_s: float = 0.0  # 0: no limit; else back to OPEN after this long

    def __post_init__(self) -> None:
        def need(ok: bool, field: str, what: str) -> None:
            if not ok:
                raise BreakerConfigError(
                    f"BreakerConfig.{field} must be {what}, got {getattr(self, field)!r}"
                )

        need(isinstance(self.window_type, WindowType), "window_type", "a WindowType")
        for field in ("window_size", "minimum_calls", "permitted_calls_in_half_open"):
            value = getattr(self, field)
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 1, field, "an int >= 1")
        for field in ("failure_rate_threshold", "slow_call_rate_threshold"):
            value = getattr(self, field)
            need(_real(value) and 0 < value <= 100, field, "a percentage in (0, 100]")
        for field in ("slow_call_duration_s", "wait_in_open_s"):
            value = getattr(self, field)
            need(_real(value) and value > 0, field, "a number of seconds > 0")
        value = self.max_wait_in_half_open_s
        need(_real(value) and value >= 0, "max_wait_in_half_open_s", "a number of seconds >= 0")
        need(isinstance(self.automatic_half_open, bool), "automatic_half_open", "a bool")

    @property
    def effective_minimum_calls(self) -> int:
        """Calls the CLOSED window must hold before its rates count."""
        if self.window_type is WindowType.COUNT_BASED:
            return min(self.minimum_calls, self.window_size)
        return self.minimum_calls


@dataclass(frozen=True)
class Transition:
    """A state change at time ``t`` (s, on the breaker's clock)."""

    t: float
    old: State
    new: State
    reason: str


@dataclass(frozen=True)
class BreakerSnapshot:
    """A breaker's state, counters and timeline at one moment (times in s on the breaker's clock)."""

    name: str
    state: State
    times_opened: int  # transitions to OPEN (FORCED_OPEN not included)
    calls_permitted: int
    calls_not_permitted: int
    successes: int
    failures: int
    slow_calls: int
    transitions: tuple[tuple[float, str], ...]  # (t, new state's name), oldest first
    seconds_not_closed: float  # time spent in any state but CLOSED, up to the snapshot's `now`


class CallNotPermitted(TwinError):
    """The breaker refused a call."""

    def __init__(self, name: str, state: State) -> None:
        super().__init__(f"circuit breaker {name!r} is {state.name} and does not permit calls")
        self.name = name
        self.state = state


class _Window:
    """Outcome counts of recent calls: the last ``size`` calls, or the calls completed in the
    last ``size`` whole seconds. Entries are ``[second, calls, failed, slow]``; a COUNT_BASED
    entry is one call, a TIME_BASED entry the calls completed in one second."""

    def __init__(self, kind: WindowType, size: int, minimum: int) -> None:
        self.kind, self.size, self.minimum = kind, size, minimum
        self._entries: deque[list[int]] = deque()
        self._sums = [0, 0, 0]  # calls, failed, slow

    def _pop_oldest(self) -> None:
        _, calls, failed, slow = self._entries.popleft()
        sums = self._sums
        sums[0] -= calls
        sums[1] -= failed
        sums[2] -= slow

    def _expire(self, now: float) -> None:
        if self.kind is WindowType.TIME_BASED:
            oldest = math.floor(now) - self.size + 1
            while self._entries and self._entries[0][0] < oldest:
                self._pop_oldest()

    def record(self, failed: bool, slow: bool, now: float) -> None:
        if self.kind is WindowType.COUNT_BASED:
            if len(self._entries) == self.size:
                self._pop_oldest()
            self._entries.append([0, 0, 0, 0])
        else:
            self._expire(now)
            second = math.floor(now)
            if not self._entries or self._entries[-1][0] != second:
                self._entries.append([second, 0, 0, 0])
        entry, sums = self._entries[-1], self._sums
        entry[1] += 1
        sums[0] += 1
        if failed:
            entry[2] += 1
            sums[1] += 1
        if slow:
            entry[3] += 1
            sums[2] += 1

    def rates(self, now: float) -> tuple[float, float]:
        """(failure rate, slow-call rate) in percent; -1.0 each below the minimum calls."""
        self._expire(now)
        calls, failed, slow = self._sums
        if calls < self.minimum:
            return -1.0, -1.0
        return failed * 100.0 / calls, slow * 100.0 / calls


class CircuitBreaker:
    """A circuit breaker; ``now()`` gives the time in seconds.

    Callers ask :meth:`try_acquire` (or :meth:`acquire`) before a call, then report it with
    :meth:`record_success` / :meth:`record_failure` (its duration in seconds) or, when it ended
    as neither, :meth:`release`. Outcomes count in CLOSED, HALF_OPEN and OPEN (a call let
    through just before the breaker opened still lands in its window, as in resilience4j);
    DISABLED and FORCED_OPEN record nothing, counters included. ``on_transition`` runs on each
    state change; for a time-driven change that is when the breaker is next used or looked at,
    while ``Transition.t`` is the time the change fell due.
    """

    def __init__(
        self,
        name: str,
        config: BreakerConfig,
        now: Callable[[], float],
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self.name, self.config = name, config
        self._now, self._on_transition = now, on_transition
        self._transitions: list[Transition] = []
        self._state = State.CLOSED
        self._since = now()  # when the current state began (s)
        self._permits = 0  # HALF_OPEN permits left
        self._window: _Window | None = self._fresh_window(State.CLOSED)
        self._zero_counters()

    def _zero_counters(self) -> None:
        self.calls_permitted = self.calls_not_permitted = 0
        self.successes = self.failures = self.slow_calls = 0

    def _fresh_window(self, state: State) -> _Window | None:
        c = self.config
        if state is State.CLOSED:
            return _Window(c.window_type, c.window_size, c.effective_minimum_calls)
        if state is State.HALF_OPEN:
            n = c.permitted_calls_in_half_open
            return _Window(WindowType.COUNT_BASED, n, n)
        return None

    def _go(self, new: State, t: float, reason: str) -> None:
        old = self._state
        if new is not State.OPEN:  # OPEN keeps the window that opened it
            self._window = self._fresh_window(new)
        self._permits = self.config.permitted_calls_in_half_open if new is State.HALF_OPEN else 0
        self._state, self._since = new, t
        if new is not old:
            transition = Transition(t, old, new, reason)
            self._transitions.append(transition)
            if self._on_transition is not None:
                self._on_transition(transition)

    def _advance(self) -> float:
        """Apply the time-driven transitions due by now; return now (s)."""
        t = self._now()
        if self._state is State.CLOSED:  # the common case: nothing leaves CLOSED by time alone
            return t
        c = self.config
        while True:
            if self._state is State.OPEN and c.automatic_half_open and t >= self._since + c.wait_in_open_s:
                self._go(State.HALF_OPEN, self._since + c.wait_in_open_s, f"waited {c.wait_in_open_s} s")
            elif (
                self._state is State.HALF_OPEN
                and c.max_wait_in_half_open_s > 0
                and t >= self._since + c.max_wait_in_half_open_s
            ):
                reason = f"still half-open after {c.max_wait_in_half_open_s} s"
                self._go(State.OPEN, self._since + c.max_wait_in_half_open_s, reason)
            else:
                return t

    @property
    def state(self) -> State:
        self._advance()
        return self._state

    def rejects_calls(self) -> bool:
        """Whether a call now would be refused for being OPEN or FORCED_OPEN (cheap when CLOSED:
        this runs on every routing decision)."""
        if self._state is State.CLOSED or self._state is State.DISABLED:
            return False  # neither leaves by the passing of time
        return self.state in (State.OPEN, State.FORCED_OPEN)

    @property
    def transitions(self) -> list[Transition]:
        """The state timeline so far (a copy)."""
        self._advance()
        return list(self._transitions)

    def snapshot(self, now: float | None = None) -> BreakerSnapshot:
        """State and counters now; `seconds_not_closed` runs up to `now` (default: the clock's now).

        Counters are those since the last :meth:`reset`; the timeline is the whole one.
        """
        t = self._advance()
        end = t if now is None else now
        not_closed = 0.0
        since: float | None = None  # a breaker starts CLOSED
        for tr in self._transitions:
            if tr.new is not State.CLOSED and since is None:
                since = tr.t
            elif tr.new is State.CLOSED and since is not None:
                not_closed += max(0.0, min(tr.t, end) - since)
                since = None
        if since is not None:
            not_closed += max(0.0, end - since)
        return BreakerSnapshot(
            name=self.name,
            state=self._state,
            times_opened=sum(1 for tr in self._transitions if tr.new is State.OPEN),
            calls_permitted=self.calls_permitted,
            calls_not_permitted=self.calls_not_permitted,
            successes=self.successes,
            failures=self.failures,
            slow_calls=self.slow_calls,
            transitions=tuple((tr.t, tr.new.name) for tr in self._transitions),
            seconds_not_closed=not_closed,
        )

    def try_acquire(self) -> bool:
        """Permission for one call; takes a HALF_OPEN permit. Never raises."""
        t = self._advance()
        if self._state is State.OPEN and t >= self._since + self.config.wait_in_open_s:
            self._go(State.HALF_OPEN, t, "first call after the wait in OPEN")
        if self._state in (State.CLOSED, State.DISABLED):
            permitted = True
        elif self._state is State.HALF_OPEN and self._permits > 0:
            self._permits -= 1
            permitted = True
        else:
            permitted = False
        self.calls_permitted += permitted
        self.calls_not_permitted += not permitted
        return permitted

    def acquire(self) -> None:
        """Like :meth:`try_acquire`, but raises :class:`CallNotPermitted` on refusal."""
        if not self.try_acquire():
            raise CallNotPermitted(self.name, self._state)

    def record_success(self, duration_s: float) -> None:
        """A permitted call succeeded after ``duration_s`` seconds."""
        self._record(False, duration_s)

    def record_failure(self, duration_s: float) -> None:
        """A permitted call failed after ``duration_s`` seconds."""
        self._record(True, duration_s)

    def _record(self, failed: bool, duration_s: float) -> None:
        if not (_real(duration_s) and duration_s >= 0):
            raise ValueError(f"duration_s must be a number of seconds >= 0, got {duration_s!r}")
        t = self._advance()
        if self._window is None:  # DISABLED, FORCED_OPEN
            return
        c = self.config
        slow = duration_s >= c.slow_call_duration_s
        self.failures += failed
        self.successes += not failed
        self.slow_calls += slow
        self._window.record(failed, slow, t)
        if self._state is State.OPEN:
            return
        failure_rate, slow_rate = self._window.rates(t)
        if failure_rate < 0:
            return
        if failure_rate >= c.failure_rate_threshold:
            self._go(State.OPEN, t, f"failure rate {failure_rate:g}% >= {c.failure_rate_threshold:g}%")
        elif slow_rate >= c.slow_call_rate_threshold:
            self._go(State.OPEN, t, f"slow-call rate {slow_rate:g}% >= {c.slow_call_rate_threshold:g}%")
        elif self._state is State.HALF_OPEN:
            self._go(State.CLOSED, t, f"rates below thresholds over {self._window.size} half-open calls")

    def release(self) -> None:
        """A permitted call ended as neither success nor failure: give a HALF_OPEN permit back."""
        self._advance()
        if self._state is State.HALF_OPEN and self._permits < self.config.permitted_calls_in_half_open:
            self._permits += 1

    def failure_rate(self) -> float:
        """Failure rate of the current window in percent; -1.0 below the minimum calls."""
        t = self._advance()
        return -1.0 if self._window is None else self._window.rates(t)[0]

    def slow_call_rate(self) -> float:
        """Slow-call rate of the current window in percent; -1.0 below the minimum calls."""
        t = self._advance()
        return -1.0 if self._window is None else self._window.rates(t)[1]

    def transition_to_disabled(self) -> None:
        """Permit every call and record nothing until :meth:`transition_to_closed` or :meth:`reset`."""
        self._go(State.DISABLED, self._advance(), "transition_to_disabled()")

    def transition_to_forced_open(self) -> None:
        """Refuse every call until :meth:`transition_to_closed` or :meth:`reset`."""
        self._go(State.FORCED_OPEN, self._advance(), "transition_to_forced_open()")

    def transition_to_closed(self) -> None:
        """CLOSED with a fresh window."""
        self._go(State.CLOSED, self._advance(), "transition_to_closed()")

    def reset(self) -> None:
        """CLOSED with a fresh window and zeroed counters; the timeline is kept."""
        self._go(State.CLOSED, self._advance(), "reset()")
        self._zero_counters()

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, {self._state.name})"
