"""The circuit breaker: each rule on its own, a reference model under hypothesis, a SimPy run."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
from collections.abc import Generator
from typing import Any

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

import twin.patterns.breaker as breaker_module
from servo_core.errors import ConfigError, TwinError
from twin.patterns.breaker import (
    BreakerConfig,
    BreakerSnapshot,
    CallNotPermitted,
    CircuitBreaker,
    State,
    Transition,
    WindowType,
)

C, O, H, D, F = State.CLOSED, State.OPEN, State.HALF_OPEN, State.DISABLED, State.FORCED_OPEN  # noqa: E741


class Clock:
    """A hand-driven clock (s)."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(**config: Any) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    return CircuitBreaker("svc", BreakerConfig(**config), clock), clock


def call(cb: CircuitBreaker, ok: bool, duration_s: float = 0.0) -> bool:
    """Attempt a call and record its outcome if it was permitted."""
    if not cb.try_acquire():
        return False
    (cb.record_success if ok else cb.record_failure)(duration_s)
    return True


def hops(cb: CircuitBreaker) -> list[tuple[float, State, State]]:
    return [(tr.t, tr.old, tr.new) for tr in cb.transitions]


def open_it(cb: CircuitBreaker, failures: int) -> None:
    for _ in range(failures):
        call(cb, ok=False)
    assert cb.state is O


# ---- the CLOSED window --------------------------------------------------------------------------


def test_count_window_opens_when_failure_rate_reaches_threshold_exactly():
    cb, _ = make(window_size=4, minimum_calls=4, failure_rate_threshold=50)
    for ok in (True, True, False):
        call(cb, ok)
    assert cb.state is C and cb.failure_rate() == -1.0
    call(cb, ok=False)  # 2 of 4 = 50% >= 50%
    assert cb.state is O
    assert cb.failure_rate() == 50.0
    assert hops(cb) == [(0.0, C, O)]
    assert "failure rate 50% >= 50%" in cb.transitions[0].reason


def test_count_window_stays_closed_just_below_threshold():
    cb, _ = make(window_size=4, minimum_calls=4, failure_rate_threshold=75)
    for ok in (True, False, True, False, True, False):
        call(cb, ok)
    assert cb.state is C and cb.failure_rate() == 50.0


def test_count_window_holds_only_the_last_n_calls():
    cb, _ = make(window_size=3, minimum_calls=3, failure_rate_threshold=100)
    for ok in (False, False, True, False, False):
        call(cb, ok)
    assert cb.state is C and cb.failure_rate() == pytest.approx(200 / 3)
    call(cb, ok=False)  # the success has slid out
    assert cb.state is O


def test_rates_do_not_count_below_minimum_calls():
    cb, _ = make(window_size=10, minimum_calls=5, failure_rate_threshold=50)
    for _ in range(4):
        call(cb, ok=False)
    assert cb.state is C
    assert cb.failure_rate() == -1.0 and cb.slow_call_rate() == -1.0
    call(cb, ok=False)
    assert cb.state is O


def test_count_window_minimum_calls_is_capped_by_window_size():
    cb, _ = make(window_size=3, minimum_calls=100)
    for _ in range(3):
        call(cb, ok=False)
    assert cb.state is O


def test_time_window_buckets_calls_by_whole_second_of_completion():
    cb, clock = make(window_type=WindowType.TIME_BASED, window_size=2, minimum_calls=2)
    clock.t = 0.0
    call(cb, ok=False)
    clock.t = 1.99
    assert cb.failure_rate() == -1.0  # one call in seconds 0..1
    clock.t = 2.0  # second 0 drops out although only 2.0 s have passed
    call(cb, ok=False)
    assert cb.state is C and cb.failure_rate() == -1.0
    clock.t = 3.75
    call(cb, ok=True)  # seconds 2..3 hold a failure and a success: 50%
    assert cb.state is O and hops(cb) == [(3.75, C, O)]


def test_time_window_aggregates_many_calls_in_one_second():
    cb, clock = make(
        window_type=WindowType.TIME_BASED, window_size=1, minimum_calls=4, failure_rate_threshold=75
    )
    for k, ok in enumerate((True, False, False, True, False)):
        clock.t = 5 + k / 10
        call(cb, ok)
    assert cb.state is C and cb.failure_rate() == 60.0
    clock.t = 6.0  # the whole bucket expires
    assert cb.failure_rate() == -1.0
    for _ in range(4):
        call(cb, ok=False)
    assert cb.state is O


def test_slow_calls_open_the_breaker_at_the_duration_threshold_exactly():
    cb, _ = make(window_size=2, minimum_calls=2, slow_call_rate_threshold=50, slow_call_duration_s=1.0)
    call(cb, ok=True, duration_s=0.999)
    assert cb.state is C
    call(cb, ok=True, duration_s=1.0)  # exactly the duration threshold: slow; 50% >= 50%
    assert cb.state is O
    assert cb.slow_call_rate() == 50.0 and cb.failure_rate() == 0.0
    assert cb.slow_calls == 1 and cb.successes == 2
    assert "slow-call rate" in cb.transitions[0].reason


def test_a_slow_failure_counts_as_failure_and_as_slow():
    cb, _ = make(window_size=2, minimum_calls=2, slow_call_duration_s=1.0, failure_rate_threshold=100)
    call(cb, ok=True)
    call(cb, ok=False, duration_s=5.0)
    assert cb.failure_rate() == 50.0 and cb.slow_call_rate() == 50.0
    assert (cb.failures, cb.slow_calls) == (1, 1)


def test_negative_duration_is_refused():
    cb, _ = make()
    cb.acquire()
    with pytest.raises(ValueError, match="duration_s"):
        cb.record_success(-0.1)


# ---- OPEN ---------------------------------------------------------------------------------------


def test_open_rejects_calls_and_acquire_names_breaker_and_state():
    cb, _ = make(window_size=1, minimum_calls=1)
    open_it(cb, 1)
    assert cb.try_acquire() is False
    with pytest.raises(CallNotPermitted, match="'svc' is OPEN") as info:
        cb.acquire()
    assert isinstance(info.value, TwinError)
    assert (info.value.name, info.value.state) == ("svc", O)
    assert (cb.calls_permitted, cb.calls_not_permitted) == (1, 2)


def test_wait_in_open_without_automatic_transition_moves_on_the_next_call():
    cb, clock = make(window_size=1, minimum_calls=1, wait_in_open_s=5.0)
    clock.t = 1.0
    open_it(cb, 1)
    clock.t = 5.99
    assert cb.try_acquire() is False
    clock.t = 20.0
    assert cb.state is O  # nobody asked: still OPEN long after the wait
    assert cb.try_acquire() is True
    assert cb.state is H
    assert hops(cb) == [(1.0, C, O), (20.0, O, H)]


def test_wait_in_open_ends_at_exactly_the_wait():
    cb, clock = make(window_size=1, minimum_calls=1, wait_in_open_s=5.0)
    open_it(cb, 1)
    clock.t = 5.0
    assert cb.try_acquire() is True and cb.state is H


def test_automatic_half_open_is_stamped_when_the_wait_ended():
    seen: list[Transition] = []
    clock = Clock(2.0)
    config = BreakerConfig(window_size=1, minimum_calls=1, wait_in_open_s=3.0, automatic_half_open=True)
    cb = CircuitBreaker("svc", config, clock, on_transition=seen.append)
    open_it(cb, 1)
    clock.t = 4.99
    assert cb.state is O
    clock.t = 9.0  # looked at long after the wait ended
    assert cb.state is H
    assert [(tr.t, tr.old, tr.new) for tr in seen] == [(2.0, C, O), (5.0, O, H)]
    assert seen == cb.transitions


def test_automatic_half_open_happens_at_exactly_the_wait():
    cb, clock = make(window_size=1, minimum_calls=1, wait_in_open_s=3.0, automatic_half_open=True)
    open_it(cb, 1)
    clock.t = 3.0
    assert cb.state is H


def test_outcomes_of_calls_in_flight_when_the_breaker_opened_still_count():
    cb, _ = make(window_size=2, minimum_calls=2, failure_rate_threshold=100)
    assert cb.try_acquire() and cb.try_acquire() and cb.try_acquire()
    cb.record_failure(0.1)
    cb.record_failure(0.1)
    assert cb.state is O
    cb.record_success(0.1)  # lands in the OPEN breaker's window, changes no state
    assert cb.state is O and cb.failure_rate() == 50.0 and cb.successes == 1


# ---- HALF_OPEN ----------------------------------------------------------------------------------


def half_open(**config: Any) -> tuple[CircuitBreaker, Clock]:
    config = {"window_size": 1, "minimum_calls": 1, "wait_in_open_s": 1.0, **config}
    cb, clock = make(**config)
    open_it(cb, 1)
    clock.t = 1.0
    assert cb.try_acquire()
    cb.release()  # permit returned: all permits are free again
    assert cb.state is H
    return cb, clock


def test_half_open_permits_exactly_the_permitted_calls():
    cb, _ = half_open(permitted_calls_in_half_open=3)
    assert [cb.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert cb.state is H


def test_half_open_closes_with_a_fresh_window_when_rates_are_below_thresholds():
    cb, clock = half_open(permitted_calls_in_half_open=3, failure_rate_threshold=50, window_size=4)
    clock.t = 2.0
    assert call(cb, ok=False) and call(cb, ok=True)
    assert cb.state is H and cb.failure_rate() == -1.0  # not judged before all 3 complete
    assert call(cb, ok=True)  # 33% < 50%
    assert cb.state is C and cb.failure_rate() == -1.0
    assert hops(cb)[-1] == (2.0, H, C)


def test_half_open_reopens_when_a_rate_reaches_its_threshold():
    cb, clock = half_open(permitted_calls_in_half_open=2, failure_rate_threshold=50)
    clock.t = 2.0
    call(cb, ok=True)
    call(cb, ok=False)  # 50% >= 50%
    assert cb.state is O and hops(cb)[-1] == (2.0, H, O)
    assert cb.try_acquire() is False  # a fresh wait in OPEN began at 2.0
    clock.t = 3.0
    assert cb.try_acquire() is True


def test_half_open_judges_over_permitted_calls_not_minimum_calls():
    cb, clock = make(window_size=5, minimum_calls=5, wait_in_open_s=1.0, permitted_calls_in_half_open=2)
    open_it(cb, 5)
    clock.t = 1.0
    call(cb, ok=True)
    call(cb, ok=True)  # 2 calls < minimum_calls, but all permitted calls have completed
    assert cb.state is C


def test_half_open_reopens_on_slow_calls():
    cb, _ = half_open(permitted_calls_in_half_open=2, slow_call_duration_s=0.5, slow_call_rate_threshold=100)
    call(cb, ok=True, duration_s=0.5)
    call(cb, ok=True, duration_s=0.7)
    assert cb.state is O


def test_max_wait_in_half_open_sends_the_breaker_back_to_open():
    cb, clock = half_open(permitted_calls_in_half_open=2, max_wait_in_half_open_s=2.5)
    assert call(cb, ok=True)
    clock.t = 3.49
    assert cb.state is H
    clock.t = 10.0
    assert cb.state is O
    assert hops(cb)[-1] == (3.5, H, O)


def test_max_wait_and_automatic_half_open_alternate_while_nobody_calls():
    cb, clock = make(
        window_size=1,
        minimum_calls=1,
        wait_in_open_s=1.0,
        automatic_half_open=True,
        max_wait_in_half_open_s=2.0,
    )
    open_it(cb, 1)
    clock.t = 7.5
    assert cb.state is H
    assert hops(cb) == [(0.0, C, O), (1.0, O, H), (3.0, H, O), (4.0, O, H), (6.0, H, O), (7.0, O, H)]


def test_zero_max_wait_stays_half_open_until_the_permitted_calls_complete():
    cb, clock = half_open(permitted_calls_in_half_open=2)
    call(cb, ok=True)
    clock.t = 1e6
    assert cb.state is H
    call(cb, ok=True)
    assert cb.state is C


def test_release_gives_a_half_open_permit_back():
    cb, _ = half_open(permitted_calls_in_half_open=1)
    assert cb.try_acquire() and not cb.try_acquire()
    cb.release()
    assert cb.try_acquire()
    cb.release()
    cb.release()  # cannot make more permits than configured
    assert cb.try_acquire() and not cb.try_acquire()


def test_release_outside_half_open_changes_nothing():
    cb, _ = make(window_size=1, minimum_calls=1)
    assert cb.try_acquire()
    cb.release()
    assert cb.state is C and cb.failure_rate() == -1.0 and cb.calls_permitted == 1


# ---- manual states ------------------------------------------------------------------------------


def test_disabled_permits_everything_and_records_nothing():
    cb, clock = make(window_size=1, minimum_calls=1)
    cb.transition_to_disabled()
    for _ in range(10):
        assert call(cb, ok=False, duration_s=1e3)
    clock.t = 1e4
    assert cb.state is D
    assert cb.failure_rate() == -1.0
    assert (cb.calls_permitted, cb.failures, cb.slow_calls) == (10, 0, 0)
    cb.transition_to_closed()
    assert cb.state is C
    assert hops(cb) == [(0.0, C, D), (1e4, D, C)]


def test_forced_open_rejects_everything_until_closed_or_reset():
    cb, clock = make(automatic_half_open=True, wait_in_open_s=1.0)
    cb.transition_to_forced_open()
    clock.t = 100.0
    assert cb.state is F and cb.try_acquire() is False
    with pytest.raises(CallNotPermitted, match="FORCED_OPEN"):
        cb.acquire()
    cb.reset()
    assert cb.state is C and cb.calls_not_permitted == 0
    assert hops(cb) == [(0.0, C, F), (100.0, F, C)]


def test_reset_gives_a_fresh_window_and_zeroed_counters_and_keeps_the_timeline():
    cb, _ = make(window_size=3, minimum_calls=3)
    call(cb, ok=False)
    call(cb, ok=False)
    cb.reset()  # already CLOSED: no transition, but the window starts again
    assert cb.transitions == []
    assert (cb.calls_permitted, cb.failures) == (0, 0)
    call(cb, ok=False)
    call(cb, ok=False)
    assert cb.state is C
    call(cb, ok=False)
    assert cb.state is O


def test_transition_to_closed_leaves_open():
    cb, _ = make(window_size=1, minimum_calls=1)
    open_it(cb, 1)
    cb.transition_to_closed()
    assert cb.state is C and cb.try_acquire()


# ---- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("window_type", "count_based"),
        ("window_size", 0),
        ("window_size", 2.0),
        ("minimum_calls", 0),
        ("minimum_calls", True),
        ("failure_rate_threshold", 0),
        ("failure_rate_threshold", 100.5),
        ("failure_rate_threshold", math.nan),
        ("slow_call_rate_threshold", -1.0),
        ("slow_call_duration_s", 0.0),
        ("wait_in_open_s", 0.0),
        ("wait_in_open_s", "60"),
        ("automatic_half_open", 1),
        ("permitted_calls_in_half_open", 0),
        ("max_wait_in_half_open_s", -0.5),
    ],
)
def test_config_validation_names_the_field(field: str, value: Any):
    with pytest.raises(ValueError, match=f"BreakerConfig.{field} ") as info:
        BreakerConfig(**{field: value})
    assert isinstance(info.value, ConfigError)


def test_config_defaults_are_those_of_resilience4j():
    config = BreakerConfig()
    assert (config.window_size, config.minimum_calls, config.failure_rate_threshold) == (100, 100, 50.0)
    assert config.effective_minimum_calls == 100
    assert dataclasses.replace(config, window_size=10).effective_minimum_calls == 10
    time_based = dataclasses.replace(config, window_type=WindowType.TIME_BASED, window_size=10)
    assert time_based.effective_minimum_calls == 100


def test_the_breaker_reads_no_clock_of_its_own():
    tree = ast.parse(inspect.getsource(breaker_module))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"time", "datetime"}


# ---- a reference model under hypothesis ---------------------------------------------------------


class Reference:
    """The rules again, as plainly as possible: lists of calls, rates recomputed from scratch."""

    def __init__(self, config: BreakerConfig) -> None:
        self.c = config
        self.state = C
        self.entered = 0.0
        self.calls: list[tuple[float, bool, bool]] = []  # (completion time, failed, slow)
        self.metrics: str | None = "closed"  # whose rules judge self.calls
        self.permits = 0
        self.log: list[tuple[float, State, State]] = []
        self.counts = [0, 0, 0, 0, 0]  # permitted, not permitted, successes, failures, slow

    def move(self, new: State, t: float) -> None:
        if new != self.state:
            self.log.append((t, self.state, new))
        if new != O:
            self.calls = []
            self.metrics = {C: "closed", H: "half-open"}.get(new)
        self.permits = self.c.permitted_calls_in_half_open if new == H else 0
        self.state, self.entered = new, t

    def catch_up(self, now: float) -> None:
        c = self.c
        while True:
            if self.state == O and c.automatic_half_open and now >= self.entered + c.wait_in_open_s:
                self.move(H, self.entered + c.wait_in_open_s)
            elif (
                self.state == H
                and c.max_wait_in_half_open_s
                and now >= self.entered + c.max_wait_in_half_open_s
            ):
                self.move(O, self.entered + c.max_wait_in_half_open_s)
            else:
                return

    def rates(self, now: float) -> tuple[float, float]:
        c = self.c
        if self.metrics == "half-open":
            window, need = self.calls[-c.permitted_calls_in_half_open :], c.permitted_calls_in_half_open
        elif self.metrics == "closed" and c.window_type == WindowType.COUNT_BASED:
            window, need = self.calls[-c.window_size :], min(c.minimum_calls, c.window_size)
        elif self.metrics == "closed":
            oldest = math.floor(now) - c.window_size
            window, need = [x for x in self.calls if math.floor(x[0]) > oldest], c.minimum_calls
        else:
            window, need = [], 1
        if len(window) < need:
            return -1.0, -1.0
        failed = sum(1 for x in window if x[1])
        slow = sum(1 for x in window if x[2])
        return 100 * failed / len(window), 100 * slow / len(window)

    def try_call(self, now: float) -> bool:
        self.catch_up(now)
        if self.state == O and now >= self.entered + self.c.wait_in_open_s:
            self.move(H, now)
        ok = self.state in (C, D) or (self.state == H and self.permits > 0)
        if self.state == H and ok:
            self.permits -= 1
        self.counts[0 if ok else 1] += 1
        return ok

    def record(self, now: float, failed: bool, duration: float) -> None:
        self.catch_up(now)
        if self.state in (D, F):
            return
        slow = duration >= self.c.slow_call_duration_s
        self.counts[3 if failed else 2] += 1
        self.counts[4] += slow
        self.calls.append((now, failed, slow))
        if self.state == O:
            return
        failure_rate, slow_rate = self.rates(now)
        if failure_rate == -1.0:
            return
        if failure_rate >= self.c.failure_rate_threshold or slow_rate >= self.c.slow_call_rate_threshold:
            self.move(O, now)
        elif self.state == H:
            self.move(C, now)

    def release(self, now: float) -> None:
        self.catch_up(now)
        if self.state == H:
            self.permits = min(self.permits + 1, self.c.permitted_calls_in_half_open)

    def manual(self, now: float, new: State, reset: bool) -> None:
        self.catch_up(now)
        self.move(new, now)
        if reset:
            self.counts = [0, 0, 0, 0, 0]


def quarters(hi: float) -> st.SearchStrategy[float]:
    """Multiples of 0.25 s up to hi: exact in binary, so boundaries are hit exactly."""
    return st.integers(0, int(hi * 4)).map(lambda k: k / 4)


PERCENT = st.sampled_from([25.0, 50.0, 75.0, 100.0])
CONFIGS = st.builds(
    BreakerConfig,
    window_type=st.sampled_from(WindowType),
    window_size=st.integers(1, 5),
    minimum_calls=st.integers(1, 6),
    failure_rate_threshold=PERCENT,
    slow_call_rate_threshold=PERCENT,
    slow_call_duration_s=st.sampled_from([0.5, 1.0, 1.5, 2.0]),
    wait_in_open_s=st.sampled_from([0.5, 1.0, 2.0, 3.5]),
    automatic_half_open=st.booleans(),
    permitted_calls_in_half_open=st.integers(1, 4),
    max_wait_in_half_open_s=st.sampled_from([0.0, 0.0, 1.0, 2.5, 4.0]),
)
MANUAL = {"to_closed": C, "to_disabled": D, "to_forced_open": F, "reset": C}  # step -> target state
# Each segment of a run has its own health (an outage, a recovery, a flaky spell), pace and call speed.
HEALTH = [
    ["success"] * 9 + ["failure", "release", "look"],
    ["failure"] * 9 + ["success", "look"],
    ["success", "failure", "look"],
]
PACE = [quarters(0.5), quarters(3)]
SPEED = [quarters(0.5), quarters(2)]


def segment(actions: list[str], gaps: st.SearchStrategy[float], durations: st.SearchStrategy[float]):
    return st.lists(st.tuples(gaps, st.sampled_from(actions), durations), max_size=20)


CALLS = st.builds(segment, st.sampled_from(HEALTH), st.sampled_from(PACE), st.sampled_from(SPEED)).flatmap(
    lambda s: s
)
MANUAL_STEP = st.tuples(quarters(3), st.sampled_from(sorted(MANUAL)), st.just(0.0)).map(lambda step: [step])
SEGMENTS = st.one_of(CALLS, CALLS, CALLS, CALLS, MANUAL_STEP)
STEPS = st.lists(SEGMENTS, max_size=8).map(lambda segments: [step for seg in segments for step in seg])


@settings(max_examples=300, deadline=None)
@given(config=CONFIGS, steps=STEPS, observe_each_step=st.booleans())
def test_breaker_agrees_with_the_reference_model(config, steps, observe_each_step):
    clock = Clock()
    cb = CircuitBreaker("svc", config, clock)
    ref = Reference(config)
    for dt, action, duration in steps:
        clock.t += dt
        if action == "look":  # time passes with no call; the breaker is only looked at
            pass
        elif action in MANUAL:
            ref.manual(clock.t, MANUAL[action], reset=action == "reset")
            getattr(cb, action if action == "reset" else f"transition_{action}")()
        else:
            permitted = cb.try_acquire()
            assert permitted == ref.try_call(clock.t)
            if permitted:
                clock.t += duration  # the call takes its time; the outcome arrives at its end
                if action == "release":
                    cb.release()
                    ref.release(clock.t)
                else:
                    (cb.record_failure if action == "failure" else cb.record_success)(duration)
                    ref.record(clock.t, action == "failure", duration)
        if observe_each_step:
            ref.catch_up(clock.t)
            assert cb.state == ref.state
            assert (cb.failure_rate(), cb.slow_call_rate()) == ref.rates(clock.t)
    ref.catch_up(clock.t)
    assert cb.state == ref.state
    assert hops(cb) == ref.log
    counters = [cb.calls_permitted, cb.calls_not_permitted, cb.successes, cb.failures, cb.slow_calls]
    assert counters == ref.counts


# ---- in a SimPy run -----------------------------------------------------------------------------


def test_breaker_on_simpy_time_stamps_transitions_with_the_env_clock():
    """A client calls once a second; the service fails until t=10 s, each call takes 0.5 s."""
    env = simpy.Environment()
    seen: list[tuple[float, float]] = []  # (transition t, env.now when reported)
    config = BreakerConfig(
        window_size=4,
        minimum_calls=4,
        failure_rate_threshold=50,
        wait_in_open_s=5.0,
        permitted_calls_in_half_open=2,
    )
    cb = CircuitBreaker("servo-bus", config, lambda: env.now, lambda tr: seen.append((tr.t, env.now)))
    outcomes: list[tuple[float, str]] = []

    def client() -> Generator[simpy.Event, None, None]:
        for _ in range(20):
            start = env.now
            try:
                cb.acquire()
            except CallNotPermitted:
                outcomes.append((start, "rejected"))
            else:
                yield env.timeout(0.5)
                if start < 10:
                    cb.record_failure(env.now - start)
                    outcomes.append((start, "failed"))
                else:
                    cb.record_success(env.now - start)
                    outcomes.append((start, "ok"))
            yield env.timeout(1.0 - (env.now - start))

    env.process(client())
    env.run()
    assert hops(cb) == [(3.5, C, O), (9.0, O, H), (10.5, H, O), (16.0, O, H), (17.5, H, C)]
    assert all(t == when for t, when in seen)
    assert [start for start, what in outcomes if what == "rejected"] == [4, 5, 6, 7, 8, 11, 12, 13, 14, 15]
    assert cb.state is C and (cb.calls_permitted, cb.calls_not_permitted) == (10, 10)


def test_automatic_half_open_on_simpy_time_is_stamped_at_the_due_time():
    env = simpy.Environment()
    config = BreakerConfig(window_size=1, minimum_calls=1, wait_in_open_s=2.5, automatic_half_open=True)
    cb = CircuitBreaker("svc", config, lambda: env.now)

    def run() -> Generator[simpy.Event, None, None]:
        yield env.timeout(1.0)
        cb.acquire()
        yield env.timeout(0.25)
        cb.record_failure(0.25)
        yield env.timeout(10.0)
        assert cb.state is H

    env.process(run())
    env.run()
    assert hops(cb) == [(1.25, C, O), (3.75, O, H)]


# ---- snapshots ----------------------------------------------------------------------------------


def test_snapshot_of_a_fresh_breaker():
    cb, _ = make()
    snap = cb.snapshot()
    assert snap == BreakerSnapshot(
        name="svc",
        state=C,
        times_opened=0,
        calls_permitted=0,
        calls_not_permitted=0,
        successes=0,
        failures=0,
        slow_calls=0,
        transitions=(),
        seconds_not_closed=0.0,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.state = O  # type: ignore[misc]


def test_snapshot_times_the_breaker_out_of_closed_up_to_now():
    cb, clock = make(
        window_size=2,
        minimum_calls=2,
        wait_in_open_s=4.0,
        permitted_calls_in_half_open=1,
        slow_call_duration_s=9,
    )
    clock.t = 1.0
    open_it(cb, 2)  # OPEN at 1
    clock.t = 2.0
    assert not call(cb, ok=True)  # refused
    clock.t = 5.0
    assert call(cb, ok=True)  # HALF_OPEN at 5 (first call after the wait), then CLOSED at 5
    clock.t = 7.0
    open_it(cb, 2)  # OPEN again at 7
    clock.t = 8.0
    snap = cb.snapshot()
    assert snap.state is O and snap.times_opened == 2
    assert snap.transitions == ((1.0, "OPEN"), (5.0, "HALF_OPEN"), (5.0, "CLOSED"), (7.0, "OPEN"))
    assert snap.seconds_not_closed == pytest.approx(4.0 + 1.0)  # [1, 5) and [7, 8)
    assert cb.snapshot(now=10.0).seconds_not_closed == pytest.approx(4.0 + 3.0)
    assert (snap.calls_permitted, snap.calls_not_permitted) == (5, 1)
    assert (snap.successes, snap.failures, snap.slow_calls) == (1, 4, 0)


def test_snapshot_applies_the_transitions_due_by_now():
    cb, clock = make(window_size=1, minimum_calls=1, wait_in_open_s=2.0, automatic_half_open=True)
    call(cb, ok=False)
    clock.t = 3.0
    snap = cb.snapshot()
    assert snap.state is H
    assert snap.transitions == ((0.0, "OPEN"), (2.0, "HALF_OPEN"))
    assert snap.seconds_not_closed == 3.0


def test_snapshot_counts_forced_open_and_disabled_as_not_closed_but_not_as_opened():
    cb, clock = make()
    cb.transition_to_forced_open()
    clock.t = 1.5
    cb.transition_to_disabled()
    clock.t = 2.0
    cb.transition_to_closed()
    clock.t = 9.0
    snap = cb.snapshot()
    assert snap.times_opened == 0
    assert snap.seconds_not_closed == 2.0
