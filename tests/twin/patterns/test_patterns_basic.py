"""Retry, timeouts, bulkhead and rate limiter on SimPy's clock: exact times, the SimPy traps, composition."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simpy
import simpy.rt
from hypothesis import given, settings
from hypothesis import strategies as st

from servo_core.errors import ConfigError, TwinError
from sim_models.rng import component_rng
from twin.patterns.bulkhead import Bulkhead, BulkheadFull, BulkheadSnapshot
from twin.patterns.rate_limiter import RateLimited, RateLimiter, RateLimiterSnapshot
from twin.patterns.retry import Retry, RetryConfig, RetrySnapshot
from twin.patterns.timeouts import CallTimeout, PatternEvent, get_with_timeout, with_timeout

Gen = Generator[simpy.Event, Any, Any]


class Run:
    """`gen` run as its own process: what it returned or raised, and when."""

    def __init__(self, env: simpy.Environment, gen: Gen) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.t: float | None = None
        self.proc = env.process(self._body(env, gen))

    def _body(self, env: simpy.Environment, gen: Gen) -> Gen:
        try:
            self.value = yield from gen
        except Exception as exc:
            self.error = exc
        self.t = env.now


def later(env: simpy.Environment, delay: float, make: Callable[[], Gen]) -> Gen:
    yield env.timeout(delay)
    return (yield from make())


class Callee:
    """A call factory following a script of (duration, outcome): an exception is raised, else returned."""

    def __init__(self, env: simpy.Environment, script: list[tuple[float, Any]]) -> None:
        self.env = env
        self.script = script
        self.starts: list[float] = []
        self.finished: list[float] = []
        self.interrupts: list[tuple[float, Any]] = []

    def __call__(self) -> Gen:
        return self._run()

    def _run(self) -> Gen:
        duration, outcome = self.script[min(len(self.starts), len(self.script) - 1)]
        self.starts.append(self.env.now)
        try:
            if duration > 0:
                yield self.env.timeout(duration)
        except simpy.Interrupt as interrupt:
            self.interrupts.append((self.env.now, interrupt.cause))
            raise
        self.finished.append(self.env.now)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class OddError(TwinError):
    """An error whose constructor does not take its args back (SimPy's re-built copies would break it)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"code {code}")
        self.code = code


# --------------------------------------------------------------------------- retry


def _retry(env: simpy.Environment, seed: int = 0, **config: Any) -> Retry:
    return Retry(env, RetryConfig(**config), component_rng(seed, "retry"))


def test_backoff_attempt_times_and_last_error_reraised() -> None:
    env = simpy.Environment()
    errors = [TwinError(f"failure {k}") for k in range(4)]
    callee = Callee(env, [(0.0, e) for e in errors])
    events: list[PatternEvent] = []
    retry = Retry(env, RetryConfig(max_attempts=4, wait_s=0.5, multiplier=2.0), np.random.default_rng(0))
    retry.on_event = events.append
    run = Run(env, retry.call(callee))
    env.run()
    assert callee.starts == [0.0, 0.5, 1.5, 3.5]
    assert retry.waits == [0.5, 1.0, 2.0]
    assert run.error is errors[3] and run.t == 3.5  # the last error itself, unchanged
    assert (retry.calls, retry.retries, retry.failed_with_retry, retry.failed_without_retry) == (1, 3, 1, 0)
    assert [e.kind for e in events] == ["retry", "retry", "retry", "exhausted"]
    assert [e.t for e in events] == [0.0, 0.5, 1.5, 3.5] and events[0].pattern == "retry"


def test_backoff_is_capped() -> None:
    env = simpy.Environment()
    callee = Callee(env, [(0.0, TwinError("down"))])
    retry = _retry(env, max_attempts=5, wait_s=0.5, multiplier=2.0, max_wait_s=1.25)
    Run(env, retry.call(callee))
    env.run()
    assert retry.waits == [0.5, 1.0, 1.25, 1.25]
    assert callee.starts == [0.0, 0.5, 1.5, 2.75, 4.0]


def test_success_after_retries_returns_the_value() -> None:
    env = simpy.Environment()
    callee = Callee(env, [(0.25, TwinError("a")), (0.25, TwinError("b")), (0.25, "ok")])
    retry = _retry(env, max_attempts=3, wait_s=0.5)
    run = Run(env, retry.call(callee))
    first = Run(env, _retry(env).call(Callee(env, [(0.0, "at once")])))
    env.run()
    assert run.value == "ok" and run.t == 1.75  # 0.25 + 0.5 + 0.25 + 0.5 + 0.25
    assert (retry.successful_with_retry, retry.successful_without_retry, retry.retries) == (1, 0, 2)
    assert first.value == "at once" and first.t == 0.0


def _jitter_waits(seed: int) -> list[float]:
    env = simpy.Environment()
    config = RetryConfig(max_attempts=6, wait_s=1.0, multiplier=2.0, randomization_factor=0.5)
    retry = Retry(env, config, component_rng(seed, "planner.retry"))
    callee = Callee(env, [(0.0, TwinError("down"))])
    Run(env, retry.call(callee))
    env.run()
    assert callee.starts == pytest.approx(np.concatenate([[0.0], np.cumsum(retry.waits)]).tolist())
    return retry.waits


def test_jitter_is_seeded_and_within_bounds() -> None:
    waits = _jitter_waits(7)
    assert waits == _jitter_waits(7)
    assert waits != _jitter_waits(8)
    for k, wait in enumerate(waits):
        base = 2.0**k
        assert 0.5 * base <= wait <= 1.5 * base
    assert waits != [2.0**k for k in range(5)]


def test_errors_not_in_retry_on_or_ignored_propagate_at_once() -> None:
    class Fatal(TwinError):
        pass

    env = simpy.Environment()
    retry = _retry(env, max_attempts=5, ignore=(Fatal,))
    value_error = ValueError("bug")
    fatal = Fatal("stop")
    runs = [Run(env, retry.call(Callee(env, [(0.25, e)]))) for e in (value_error, fatal)]
    env.run()
    assert runs[0].error is value_error and runs[1].error is fatal
    assert runs[0].t == runs[1].t == 0.25
    assert retry.waits == [] and retry.failed_without_retry == 2


def test_retry_on_chooses_what_is_retried() -> None:
    env = simpy.Environment()
    retry = _retry(env, max_attempts=3, wait_s=0.25, retry_on=(KeyError,))
    callee = Callee(env, [(0.0, KeyError("k")), (0.0, TwinError("not this one"))])
    run = Run(env, retry.call(callee))
    env.run()
    assert isinstance(run.error, TwinError) and callee.starts == [0.0, 0.25]
    assert retry.failed_with_retry == 1


def test_an_interrupt_during_the_backoff_is_not_retried() -> None:
    env = simpy.Environment()
    retry = _retry(env, max_attempts=5, wait_s=1.0, retry_on=(Exception,))
    callee = Callee(env, [(0.0, TwinError("down"))])
    run = Run(env, retry.call(callee))

    def stopper() -> Gen:
        yield env.timeout(1.5)
        run.proc.interrupt("shutdown")

    env.process(stopper())
    env.run()
    assert isinstance(run.error, simpy.Interrupt) and run.t == 1.5
    assert callee.starts == [0.0, 1.0]


@pytest.mark.parametrize(
    "bad",
    [
        {"max_attempts": 0},
        {"max_attempts": 2.5},
        {"wait_s": -1.0},
        {"wait_s": math.inf},
        {"multiplier": 0.5},
        {"max_wait_s": math.nan},
        {"randomization_factor": 1.0},
        {"randomization_factor": -0.1},
        {"retry_on": (int,)},
        {"ignore": "TwinError"},
    ],
)
def test_retry_config_is_validated(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        RetryConfig(**bad)


# --------------------------------------------------------------------------- with_timeout


def test_with_timeout_returns_a_result_before_the_deadline() -> None:
    env = simpy.Environment()
    run = Run(env, with_timeout(env, Callee(env, [(1.0, 42)]), 2.0))
    env.run()
    assert run.value == 42 and run.t == 1.0


def test_with_timeout_raises_at_the_deadline_and_interrupts_the_call() -> None:
    env = simpy.Environment()
    side_effects: list[float] = []

    def slow() -> Gen:
        yield env.timeout(5.0)
        side_effects.append(env.now)  # must never happen: nobody waits for it any more

    callee = Callee(env, [(5.0, "late")])
    events: list[PatternEvent] = []
    runs = [
        Run(env, with_timeout(env, callee, 2.0, name="planner", on_event=events.append)),
        Run(env, with_timeout(env, slow, 2.0)),  # does not catch the interrupt: must not crash the run
    ]
    env.run()
    error = runs[0].error
    assert isinstance(error, CallTimeout) and runs[0].t == 2.0
    assert str(error) == "planner: no result within 2000 ms"
    assert callee.interrupts == [(2.0, error)] and callee.finished == []
    assert isinstance(runs[1].error, CallTimeout) and side_effects == []
    assert events == [PatternEvent(2.0, "planner", "timeout", "2000 ms")]


def test_with_timeout_lets_the_callee_cancel_what_it_waited_on() -> None:
    env = simpy.Environment()
    resource = simpy.Resource(env, capacity=1)
    holder = resource.request()  # the resource stays busy

    def wants_resource() -> Gen:
        with resource.request() as request:
            yield request
            return "got it"

    run = Run(env, with_timeout(env, wants_resource, 1.0))
    env.run()
    assert isinstance(run.error, CallTimeout)
    assert len(resource.queue) == 0 and resource.users == [holder]


def test_with_timeout_propagates_the_calls_own_exception_unchanged() -> None:
    env = simpy.Environment()
    error = OddError(7)
    run = Run(env, with_timeout(env, Callee(env, [(0.5, error)]), 2.0))
    env.run()
    assert run.error is error and run.error.code == 7 and run.t == 0.5


def test_with_timeout_a_result_at_the_deadline_counts_and_infinite_never_fires() -> None:
    env = simpy.Environment()
    on_time = Run(env, with_timeout(env, Callee(env, [(2.0, "just")]), 2.0))
    no_limit = Run(env, with_timeout(env, Callee(env, [(1e6, "eventually")]), math.inf))
    env.run()
    assert (on_time.value, on_time.t) == ("just", 2.0)
    assert (no_limit.value, no_limit.t) == ("eventually", 1e6)


def test_interrupting_the_caller_interrupts_the_call() -> None:
    env = simpy.Environment()
    callee = Callee(env, [(5.0, "late")])
    run = Run(env, with_timeout(env, callee, 10.0))

    def stopper() -> Gen:
        yield env.timeout(1.0)
        run.proc.interrupt("shutdown")

    env.process(stopper())
    env.run()
    assert isinstance(run.error, simpy.Interrupt) and run.t == 1.0
    assert callee.interrupts == [(1.0, "shutdown")] and callee.finished == []


def test_negative_timeouts_are_refused() -> None:
    env = simpy.Environment()
    with pytest.raises(ConfigError):
        next(with_timeout(env, Callee(env, [(0.0, 1)]), -1.0))
    with pytest.raises(ConfigError):
        next(get_with_timeout(env, simpy.Store(env), math.nan))


# --------------------------------------------------------------------------- get_with_timeout


def naive_get(env: simpy.Environment, store: simpy.Store, timeout_s: float) -> Gen:
    """The trap: `yield store.get() | env.timeout(t)` leaves the get queued when the timeout wins."""
    get = store.get()
    result = yield get | env.timeout(timeout_s)
    if get not in result:
        raise CallTimeout("naive: nothing")
    return result[get]


def _late_message(getter: Callable[..., Gen], store_type: type[simpy.Store]) -> tuple[Run, Run, list[Any]]:
    """A getter times out at 1; a message is put at 2; a second getter asks at 3."""
    env = simpy.Environment()
    store = store_type(env)
    first = Run(env, getter(env, store, 1.0))

    def producer() -> Gen:
        yield env.timeout(2.0)
        yield store.put("hello")

    env.process(producer())
    second = Run(env, later(env, 3.0, lambda: get_with_timeout(env, store, 1.0)))
    env.run()
    return first, second, list(store.items)


@pytest.mark.parametrize("store_type", [simpy.Store, simpy.FilterStore, simpy.PriorityStore])
def test_the_trap_a_timed_out_get_must_not_swallow_a_later_message(store_type: type[simpy.Store]) -> None:
    first, second, left = _late_message(naive_get, store_type)
    assert isinstance(first.error, CallTimeout) and first.t == 1.0
    assert isinstance(second.error, CallTimeout) and left == []  # the naive get ate the message

    first, second, left = _late_message(get_with_timeout, store_type)
    assert isinstance(first.error, CallTimeout) and first.t == 1.0
    assert (second.value, second.t) == ("hello", 3.0) and left == []


def test_get_with_timeout_returns_an_item_at_once_or_when_it_arrives() -> None:
    env = simpy.Environment()
    store = simpy.Store(env)
    store.put("ready")
    at_once = Run(env, get_with_timeout(env, store, 1.0))
    arriving = Run(env, get_with_timeout(env, store, 1.0))

    def producer() -> Gen:
        yield env.timeout(0.5)
        yield store.put("next")

    env.process(producer())
    env.run()
    assert (at_once.value, at_once.t) == ("ready", 0.0)
    assert (arriving.value, arriving.t) == ("next", 0.5)
    assert store.get_queue == []


def test_get_with_timeout_filters_on_a_filter_store() -> None:
    env = simpy.Environment()
    store = simpy.FilterStore(env)
    store.put({"kind": "telemetry"})
    wanted = Run(env, get_with_timeout(env, store, 1.0, filter=lambda m: m["kind"] == "reply"))

    def producer() -> Gen:
        yield env.timeout(2.0)
        yield store.put({"kind": "reply"})

    env.process(producer())
    env.run()
    assert isinstance(wanted.error, CallTimeout) and wanted.t == 1.0
    assert store.items == [{"kind": "telemetry"}, {"kind": "reply"}] and store.get_queue == []
    with pytest.raises(ConfigError):
        next(get_with_timeout(env, simpy.Store(env), 1.0, filter=bool))


def test_an_interrupted_getter_gives_back_an_item_it_was_already_granted() -> None:
    env = simpy.Environment()
    store = simpy.Store(env)
    reader = Run(env, get_with_timeout(env, store, 5.0))

    def producer() -> Gen:
        yield env.timeout(1.0)
        yield store.put("m1")  # grants the reader's get...
        store.put("m2")
        reader.proc.interrupt("shutdown")  # ...but the interrupt reaches the reader first

    env.process(producer())
    second = Run(env, later(env, 2.0, lambda: get_with_timeout(env, store, 1.0)))
    env.run()
    assert isinstance(reader.error, simpy.Interrupt) and reader.t == 1.0
    assert second.value == "m1" and store.items == ["m2"]


# --------------------------------------------------------------------------- bulkhead


calls_strategy = st.lists(
    st.tuples(st.integers(0, 20), st.integers(0, 8), st.booleans()),  # arrival, duration, raises
    min_size=1,
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(calls=calls_strategy, limit=st.integers(1, 4), max_wait=st.sampled_from([0.0, 0.5, 1.0, 3.0]))
def test_bulkhead_never_exceeds_its_limit(
    calls: list[tuple[int, int, bool]], limit: int, max_wait: float
) -> None:
    env = simpy.Environment()
    bulkhead = Bulkhead(env, limit, max_wait_s=max_wait)
    running = [0]
    peak = [0]
    starts: dict[int, float] = {}

    def make(k: int, duration: int, raises: bool) -> Callable[[], Gen]:
        def body() -> Gen:
            starts[k] = env.now
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            assert running[0] <= bulkhead.in_use <= limit
            try:
                yield env.timeout(duration)
            finally:
                running[0] -= 1
            if raises:
                raise TwinError(f"call {k} failed")
            return k

        return body

    runs = [
        Run(env, later(env, arrival, lambda k=k, d=d, r=r: bulkhead.call(make(k, d, r))))
        for k, (arrival, d, r) in enumerate(calls)
    ]
    env.run()
    assert peak[0] <= limit and bulkhead.max_in_use == peak[0]
    assert bulkhead.permitted + bulkhead.rejected == len(calls) == len(starts) + bulkhead.rejected
    for k, ((arrival, _, raises), run) in enumerate(zip(calls, runs, strict=True)):
        if isinstance(run.error, BulkheadFull):
            assert k not in starts and run.t == arrival + max_wait
        else:
            assert arrival <= starts[k] <= arrival + max_wait
            assert (run.error is not None) == raises
    assert bulkhead.in_use == 0 and len(bulkhead.resource.users) == 0 and len(bulkhead.resource.queue) == 0


def naive_bulkhead_call(env: simpy.Environment, resource: simpy.Resource, max_wait_s: float) -> Gen:
    """The trap: a slot request raced against a timeout, not cancelled when the timeout wins."""
    request = resource.request()
    yield request | env.timeout(max_wait_s)
    if not request.triggered:
        raise BulkheadFull("naive: full")
    try:
        yield env.timeout(1.0)
    finally:
        resource.release(request)


def test_the_trap_a_timed_out_slot_request_is_never_granted_later() -> None:
    env = simpy.Environment()
    bulkhead = Bulkhead(env, 1, max_wait_s=0.5, name="driver")
    holder = Run(env, bulkhead.call(Callee(env, [(2.0, "held")])))
    refused = Run(env, bulkhead.call(Callee(env, [(1.0, "never")])))
    late = Run(env, later(env, 3.0, lambda: bulkhead.call(Callee(env, [(1.0, "late")]))))
    env.run(until=2.5)
    assert isinstance(refused.error, BulkheadFull) and refused.t == 0.5
    assert str(refused.error) == "driver: all 1 slots busy for 500 ms"
    assert holder.value == "held"
    assert len(bulkhead.resource.users) == 0 and len(bulkhead.resource.queue) == 0
    env.run()
    assert (late.value, late.t) == ("late", 4.0)
    assert (bulkhead.permitted, bulkhead.rejected, bulkhead.in_use) == (2, 1, 0)

    # The same story without the cancel: the orphan request takes the slot for good.
    env = simpy.Environment()
    resource = simpy.Resource(env, capacity=1)
    Run(env, naive_bulkhead_call(env, resource, 5.0))  # holds 0..1
    refused = Run(env, later(env, 0.0, lambda: naive_bulkhead_call(env, resource, 0.5)))
    env.run()
    assert isinstance(refused.error, BulkheadFull)
    assert len(resource.users) == 1  # leaked: granted at 1.0 to nobody


def test_bulkhead_rejects_at_once_without_a_wait_and_releases_when_calls_raise() -> None:
    env = simpy.Environment()
    events: list[PatternEvent] = []
    bulkhead = Bulkhead(env, 2, on_event=events.append)
    error = OddError(3)
    runs = [Run(env, bulkhead.call(Callee(env, [(1.0, outcome)]))) for outcome in (error, "b", "c")]
    env.run()
    assert runs[0].error is error and runs[1].value == "b"
    assert isinstance(runs[2].error, BulkheadFull) and runs[2].t == 0.0
    assert bulkhead.in_use == 0 and bulkhead.max_in_use == 2
    assert [e.kind for e in events] == ["permitted", "permitted", "rejected"]


def test_bulkhead_a_slot_freed_at_the_deadline_is_taken() -> None:
    env = simpy.Environment()
    bulkhead = Bulkhead(env, 1, max_wait_s=1.0)
    Run(env, bulkhead.call(Callee(env, [(1.0, "first")])))
    second = Run(env, bulkhead.call(Callee(env, [(1.0, "second")])))
    env.run()
    assert (second.value, second.t) == ("second", 2.0) and bulkhead.rejected == 0


def test_bulkhead_interrupted_callers_leave_no_trace() -> None:
    env = simpy.Environment()
    bulkhead = Bulkhead(env, 1, max_wait_s=math.inf)
    holding = Run(env, bulkhead.call(Callee(env, [(5.0, "a")])))
    waiting = Run(env, bulkhead.call(Callee(env, [(5.0, "b")])))

    def stopper() -> Gen:
        yield env.timeout(1.0)
        waiting.proc.interrupt("stop")
        holding.proc.interrupt("stop")

    env.process(stopper())
    env.run()
    assert isinstance(waiting.error, simpy.Interrupt) and isinstance(holding.error, simpy.Interrupt)
    assert len(bulkhead.resource.users) == 0 and len(bulkhead.resource.queue) == 0
    assert bulkhead.permitted == 1


@pytest.mark.parametrize(
    "bad", [{"max_concurrent_calls": 0}, {"max_wait_s": -1.0}, {"max_concurrent_calls": 1.5}]
)
def test_bulkhead_arguments_are_validated(bad: dict[str, Any]) -> None:
    args = {"max_concurrent_calls": 1, "max_wait_s": 0.0} | bad
    with pytest.raises(ConfigError):
        Bulkhead(simpy.Environment(), **args)


# --------------------------------------------------------------------------- rate limiter


def _grant_times(limiter: RateLimiter, env: simpy.Environment, arrivals: list[float]) -> list[Run]:
    runs = [Run(env, later(env, t, limiter.acquire)) for t in arrivals]
    env.run()
    return runs


def test_rate_limiter_allows_exactly_the_limit_per_period() -> None:
    env = simpy.Environment()
    limiter = RateLimiter(env, limit_for_period=3, refresh_period_s=1.0)
    runs = _grant_times(limiter, env, [0.0] * 5 + [1.0] * 4 + [3.5] * 3)
    granted = [run.t for run in runs if run.error is None]
    refused = [run.t for run in runs if isinstance(run.error, RateLimited)]
    assert granted == [0.0] * 3 + [1.0] * 3 + [3.5] * 3  # unused periods do not pile up
    assert refused == [0.0, 0.0, 1.0]
    assert (limiter.permitted, limiter.rejected, limiter.waited) == (9, 3, 0)


def test_waiting_callers_resume_at_the_refresh() -> None:
    env = simpy.Environment()
    limiter = RateLimiter(env, limit_for_period=2, refresh_period_s=1.0, timeout_s=5.0)
    runs = _grant_times(limiter, env, [0.25] * 5)
    assert [run.t for run in runs] == [0.25, 0.25, 1.0, 1.0, 2.0]
    assert all(run.error is None for run in runs) and limiter.waited == 3 and limiter.waiting == 0


def test_rate_limited_when_the_wait_would_exceed_the_timeout() -> None:
    env = simpy.Environment()
    limiter = RateLimiter(env, limit_for_period=2, refresh_period_s=1.0, timeout_s=0.5, name="gateway")
    runs = _grant_times(limiter, env, [0.25, 0.25, 0.25, 0.5, 0.5, 0.5])
    assert isinstance(runs[2].error, RateLimited) and runs[2].t == 0.25  # would wait 0.75 s: refused at once
    assert str(runs[2].error).startswith("gateway: no permission within 500 ms")
    assert [runs[3].t, runs[4].t] == [1.0, 1.0]  # 0.5 s to the refresh: they wait
    assert isinstance(runs[5].error, RateLimited) and runs[5].t == 0.5  # the next period's are taken
    assert limiter.rejected == 2


def test_rate_limiter_periods_are_aligned_to_zero_and_try_acquire_never_waits() -> None:
    env = simpy.Environment(initial_time=0.75)
    limiter = RateLimiter(env, limit_for_period=1, refresh_period_s=1.0, timeout_s=10.0)
    assert limiter.try_acquire() and not limiter.try_acquire()
    assert limiter.next_refresh() == 1.0
    run = Run(env, limiter.call(Callee(env, [(0.0, "done")])))
    env.run()
    assert (run.value, run.t) == ("done", 1.0)
    assert (limiter.permitted, limiter.rejected) == (2, 1)


def test_an_interrupted_waiter_gives_its_reservation_back() -> None:
    env = simpy.Environment()
    limiter = RateLimiter(env, limit_for_period=1, refresh_period_s=1.0, timeout_s=10.0)
    runs = [Run(env, limiter.acquire()) for _ in range(3)]  # 0, then 1.0 and 2.0 reserved

    def stopper() -> Gen:
        yield env.timeout(0.5)
        runs[1].proc.interrupt("stop")

    env.process(stopper())
    env.run()
    assert isinstance(runs[1].error, simpy.Interrupt)
    assert [runs[0].t, runs[2].t] == [0.0, 2.0]
    assert limiter.available_permissions == 1  # the period at 1.0 went unused: no leaked reservation


@settings(max_examples=100, deadline=None)
@given(
    arrivals=st.lists(st.integers(0, 40), min_size=1, max_size=30),
    limit=st.integers(1, 3),
)
def test_rate_limiter_grants_at_most_the_limit_per_period_in_arrival_order(
    arrivals: list[int], limit: int
) -> None:
    env = simpy.Environment()
    period = 2.0
    limiter = RateLimiter(env, limit_for_period=limit, refresh_period_s=period, timeout_s=math.inf)
    times = [a * 0.25 for a in sorted(arrivals)]
    runs = _grant_times(limiter, env, times)
    granted = [run.t for run in runs]
    assert all(run.error is None for run in runs)
    assert granted == sorted(granted)
    for arrival, t in zip(times, granted, strict=True):
        assert t == arrival or (t > arrival and t % period == 0)  # at once, or at a refresh
    per_period: dict[int, int] = {}
    for t in granted:
        per_period[int(t // period)] = per_period.get(int(t // period), 0) + 1
    assert max(per_period.values()) <= limit


@pytest.mark.parametrize(
    "bad",
    [{"limit_for_period": 0}, {"refresh_period_s": 0.0}, {"refresh_period_s": math.inf}, {"timeout_s": -1}],
)
def test_rate_limiter_arguments_are_validated(bad: dict[str, Any]) -> None:
    args = {"limit_for_period": 1, "refresh_period_s": 1.0} | bad
    with pytest.raises(ConfigError):
        RateLimiter(simpy.Environment(), **args)


# --------------------------------------------------------------------------- composition


def test_retry_over_bulkhead_over_timeout() -> None:
    """Two callers share one slot; the first call hangs and is timed out; refused callers retry."""
    env = simpy.Environment()
    callee = Callee(env, [(4.0, "hung"), (0.5, "b"), (0.5, "a")])
    retry = _retry(env, max_attempts=3, wait_s=0.5)
    bulkhead = Bulkhead(env, 1, max_wait_s=0.125)

    def guarded() -> Gen:
        return retry.call(lambda: bulkhead.call(lambda: with_timeout(env, callee, 1.0, name="planner")))

    a = Run(env, guarded())
    b = Run(env, guarded())
    env.run()
    # a: slot at 0, timed out at 1.0; retry at 1.5 refused at 1.625 (b holds it); retry at 2.125 succeeds.
    # b: refused at 0.125 and 0.75; retry at 1.25 gets the slot a gave back at 1.0.
    assert (a.value, a.t) == ("a", 2.625) and (b.value, b.t) == ("b", 1.75)
    assert callee.starts == [0.0, 1.25, 2.125]
    assert len(callee.interrupts) == 1 and callee.interrupts[0][0] == 1.0
    assert isinstance(callee.interrupts[0][1], CallTimeout)
    assert (bulkhead.permitted, bulkhead.rejected, bulkhead.in_use, bulkhead.max_in_use) == (3, 3, 0, 1)
    assert (retry.calls, retry.successful_with_retry, retry.retries) == (2, 2, 4)


def test_patterns_run_on_a_realtime_environment() -> None:
    env = simpy.rt.RealtimeEnvironment(factor=0.01, strict=False)  # 1 s of runtime = 10 ms of wall clock
    callee = Callee(env, [(2.0, "hung"), (0.25, "ok")])
    retry = _retry(env, max_attempts=2, wait_s=0.5)
    limiter = RateLimiter(env, 1, 2.0, timeout_s=1.0)
    run = Run(env, retry.call(lambda: limiter.call(lambda: with_timeout(env, callee, 1.0))))
    env.run()
    assert (run.value, run.t) == ("ok", 2.25)  # timed out at 1.0, retry at 1.5 waits for the refresh at 2.0


def test_pattern_event_is_frozen_and_modules_keep_off_the_wall_clock() -> None:
    event = PatternEvent(1.0, "retry", "retry", "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.t = 2.0  # type: ignore[misc]
    for module in ("retry", "timeouts", "bulkhead", "rate_limiter"):
        source = (Path(__file__).parents[3] / "twin" / "patterns" / f"{module}.py").read_text()
        assert not re.search(r"^\s*(import|from) time\b|\btime\.", source, re.MULTILINE), module


# --------------------------------------------------------------------------- snapshots


def test_retry_snapshot() -> None:
    env = simpy.Environment()
    retry = Retry(env, RetryConfig(max_attempts=3, wait_s=0.5), np.random.default_rng(0), name="planner")
    Run(env, retry.call(Callee(env, [(0.0, TwinError("a")), (0.0, "ok")])))
    env.run()
    snap = retry.snapshot()
    assert snap == RetrySnapshot("planner", 1, 0, 1, 0, 0, 1, (0.5,))
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.calls = 2  # type: ignore[misc]


def test_bulkhead_snapshot_now_and_after() -> None:
    env = simpy.Environment()
    bulkhead = Bulkhead(env, 1, max_wait_s=0.5, name="bh")
    for _ in range(3):
        Run(env, bulkhead.call(Callee(env, [(1.0, "x")])))
    env.run(until=0.25)
    assert bulkhead.snapshot() == BulkheadSnapshot("bh", 1, 0, 1, 1, 2)
    env.run()
    assert bulkhead.snapshot() == BulkheadSnapshot("bh", 1, 2, 1, 0, 0)


def test_rate_limiter_snapshot() -> None:
    env = simpy.Environment()
    limiter = RateLimiter(env, limit_for_period=2, refresh_period_s=1.0, timeout_s=1.0, name="rl")
    runs = [Run(env, limiter.acquire()) for _ in range(5)]
    env.run(until=0.5)
    assert limiter.snapshot() == RateLimiterSnapshot("rl", 2, 0, 1, 2, -2)
    env.run()
    assert limiter.snapshot() == RateLimiterSnapshot("rl", 4, 2, 1, 0, 0)
    assert sum(isinstance(run.error, RateLimited) for run in runs) == 1
