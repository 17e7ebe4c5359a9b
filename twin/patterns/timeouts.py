"""Time limits on calls and on store gets, on the runtime's clock.

A *call* is a zero-argument factory returning a SimPy generator, for example
``lambda: bus.request(...)``. `with_timeout` runs it as its own process raced
against ``env.timeout``; when the deadline wins, the call's process is
interrupted, so it stops waiting and its own cleanup (``finally``, ``with
resource.request()``) cancels whatever it was waiting on.

`get_with_timeout` handles the classic SimPy trap: a ``store.get()`` raced
against a timeout stays queued in the store when the timeout wins, and later
swallows a message nobody is waiting for any more. Ours cancels it.

`PatternEvent` is the one record every pattern of this package reports to its
optional ``on_event`` callback (metrics, traces).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import simpy
from simpy.resources.store import StoreGet

from servo_core.errors import ConfigError, TwinError

__all__ = [
    "CallFactory",
    "CallTimeout",
    "emit",
    "EventSink",
    "get_with_timeout",
    "PatternEvent",
    "require_duration",
    "T",
    "with_timeout",
]

T = TypeVar("T")

CallFactory = Callable[[], Generator[simpy.Event, Any, T]]


class CallTimeout(TwinError):
    """A call or a get produced no result within its time limit."""


@dataclass(frozen=True, slots=True)
class PatternEvent:
    """Something a pattern did, for metrics and traces."""

    t: float  # s, the runtime's clock when it happened
    pattern: str  # the pattern instance's name (its kind of pattern when it has none)
    kind: str  # what happened: "retry", "rejected", "timeout", ...
    detail: str = ""


EventSink = Callable[[PatternEvent], None]


def require_duration(value: float, what: str, *, allow_inf: bool = True) -> float:
    """`value` as a float >= 0 (inf only when allowed); ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{what} must be a number of seconds, got {value!r}")
    value = float(value)
    if math.isnan(value) or value < 0 or (math.isinf(value) and not allow_inf):
        bound = ">= 0" if allow_inf else "finite and >= 0"
        raise ConfigError(f"{what} must be {bound}, got {value!r}")
    return value


def emit(on_event: EventSink | None, env: simpy.Environment, pattern: str, kind: str, detail: str) -> None:
    if on_event is not None:
        on_event(PatternEvent(env.now, pattern, kind, detail))


def _deadline(env: simpy.Environment, timeout_s: float) -> simpy.Event:
    """A timer, or an event that never fires when the limit is infinite."""
    return env.event() if math.isinf(timeout_s) else env.timeout(timeout_s)


class _Outcome:
    """What the call's process ended with: a value or the exception it raised (the original object)."""

    __slots__ = ("ok", "value", "error")

    def __init__(self) -> None:
        self.ok = False
        self.value: Any = None
        self.error: BaseException | None = None


def _run(factory: CallFactory[Any], outcome: _Outcome) -> Generator[simpy.Event, Any, None]:
    # The call's exception is kept, not let fail the process: SimPy would hand the
    # waiter a re-built copy (type(exc)(*exc.args)), which loses attributes and breaks
    # exceptions whose constructor differs from their args; and a call that fails after
    # the deadline (nobody waits for it) would otherwise crash the environment.
    try:
        outcome.value = yield from factory()
        outcome.ok = True
    except Exception as exc:  # simpy.Interrupt included: that is our own deadline
        outcome.error = exc


def with_timeout(
    env: simpy.Environment,
    factory: CallFactory[T],
    timeout_s: float,
    name: str = "",
    *,
    on_event: EventSink | None = None,
) -> Generator[simpy.Event, Any, T]:
    """Run the call within `timeout_s` s of the runtime's clock: ``result = yield from with_timeout(...)``.

    Returns the call's result; an exception the call raises propagates unchanged
    (the same object). When the deadline comes first, the call's process is
    interrupted (cause: the CallTimeout) and CallTimeout("<name>: no result within
    N ms") is raised at the deadline. A result produced at the very instant of the
    deadline counts, as in `Bus.request`. If the caller itself is interrupted while
    waiting, the interrupt is passed on to the call and re-raised.
    """
    timeout_s = require_duration(timeout_s, "timeout_s")
    label = name or "call"
    outcome = _Outcome()
    proc = env.process(_run(factory, outcome))
    timer = _deadline(env, timeout_s)
    try:
        yield proc | timer
    except simpy.Interrupt as interrupt:
        if proc.is_alive:
            proc.interrupt(interrupt.cause)
        raise
    if not proc.is_alive:  # finished, possibly in the same instant as the deadline
        if outcome.ok:
            return outcome.value
        assert outcome.error is not None
        raise outcome.error
    error = CallTimeout(f"{label}: no result within {timeout_s * 1000:.0f} ms")
    proc.interrupt(error)
    emit(on_event, env, label, "timeout", f"{timeout_s * 1000:.0f} ms")
    raise error


def get_with_timeout(
    env: simpy.Environment,
    store: simpy.Store,
    timeout_s: float,
    *,
    filter: Callable[[Any], bool] | None = None,  # simpy's own name for it
) -> Generator[simpy.Event, Any, Any]:
    """Get an item from `store` within `timeout_s` s: ``item = yield from get_with_timeout(...)``.

    Works for Store, PriorityStore and FilterStore (`filter` only for the last).
    When the deadline wins, the pending get is cancelled, so a message put later
    stays in the store for the next getter; CallTimeout is raised. An item that
    arrives at the very instant of the deadline is returned. If the caller is
    interrupted after its get was already granted, the item goes back to the head
    of the store rather than being lost.
    """
    timeout_s = require_duration(timeout_s, "timeout_s")
    get: StoreGet  # a FilterStoreGet with a filter
    if filter is not None:
        if not isinstance(store, simpy.FilterStore):
            raise ConfigError("a filter needs a simpy.FilterStore")
        get = store.get(filter)
    else:
        get = store.get()
    if get.triggered:  # an item was there: no race, no wait
        return get.value
    timer = _deadline(env, timeout_s)
    try:
        yield get | timer
    except simpy.Interrupt:
        if get.triggered:
            _give_back(store, get.value)
        else:
            get.cancel()
        raise
    if get.triggered:
        return get.value
    get.cancel()
    raise CallTimeout(f"{_store_name(store)}: nothing within {timeout_s * 1000:.0f} ms")


def _give_back(store: simpy.Store, item: Any) -> None:
    """Put an item already taken out back at the head of the store and wake queued getters."""
    if isinstance(store, simpy.PriorityStore):
        heapq.heappush(store.items, item)
    else:
        store.items.insert(0, item)
    store._trigger_get(None)  # hand it on now to a getter queued behind us, as a put would


def _store_name(store: simpy.Store) -> str:
    return type(store).__name__
