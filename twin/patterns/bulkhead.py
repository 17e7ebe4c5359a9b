"""Bulkhead: at most N calls at once, a bounded wait for a slot, on the runtime's clock.

Built on `simpy.Resource`. The trap it avoids: a slot request raced against a
timeout stays in the resource's queue when the timeout wins, is granted later
to nobody and holds the slot for good. Ours cancels it, and always releases a
slot it got (try/finally), also when the call raises or is interrupted.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import simpy

from servo_core.errors import ConfigError, TwinError
from twin.patterns.timeouts import CallFactory, EventSink, emit, require_duration

__all__ = ["Bulkhead", "BulkheadFull", "BulkheadSnapshot", "T"]

T = TypeVar("T")


@dataclass(frozen=True)
class BulkheadSnapshot:
    name: str
    permitted: int  # calls that got a slot
    rejected: int  # calls refused after waiting max_wait_s
    max_in_use: int  # the most slots held at once so far
    in_use: int  # now
    waiting: int  # now


class BulkheadFull(TwinError):
    """No slot became free within the bulkhead's maximum wait."""


class Bulkhead:
    """Limits concurrent calls to `max_concurrent_calls`; callers wait up to `max_wait_s` for a slot."""

    def __init__(
        self,
        env: simpy.Environment,
        max_concurrent_calls: int,
        max_wait_s: float = 0.0,
        name: str = "",
        on_event: EventSink | None = None,
    ) -> None:
        if isinstance(max_concurrent_calls, bool) or not isinstance(max_concurrent_calls, int):
            raise ConfigError(f"max_concurrent_calls must be an int, got {max_concurrent_calls!r}")
        if max_concurrent_calls < 1:
            raise ConfigError(f"max_concurrent_calls must be >= 1, got {max_concurrent_calls}")
        self.env = env
        self.max_concurrent_calls = max_concurrent_calls
        self.max_wait_s = require_duration(max_wait_s, "max_wait_s")
        self.name = name or "bulkhead"
        self.on_event = on_event
        self.resource = simpy.Resource(env, capacity=max_concurrent_calls)
        self.permitted = 0
        self.rejected = 0
        self.max_in_use = 0

    @property
    def in_use(self) -> int:
        """Slots held now."""
        return self.resource.count

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot now."""
        return len(self.resource.queue)

    def snapshot(self) -> BulkheadSnapshot:
        return BulkheadSnapshot(
            self.name, self.permitted, self.rejected, self.max_in_use, self.in_use, self.waiting
        )

    def call(self, factory: CallFactory[T]) -> Generator[simpy.Event, Any, T]:
        """``result = yield from bulkhead.call(factory)``; BulkheadFull if no slot within max_wait_s."""
        request = self.resource.request()
        try:
            if not request.triggered:
                if math.isinf(self.max_wait_s):
                    yield request
                elif self.max_wait_s > 0:
                    yield request | self.env.timeout(self.max_wait_s)
                if not request.triggered:  # a slot freed at the very deadline still counts
                    self.rejected += 1
                    emit(self.on_event, self.env, self.name, "rejected", f"{self.in_use} in use")
                    raise BulkheadFull(
                        f"{self.name}: all {self.max_concurrent_calls} slots busy "
                        f"for {self.max_wait_s * 1000:.0f} ms"
                    )
            self.permitted += 1
            self.max_in_use = max(self.max_in_use, self.resource.count)
            emit(self.on_event, self.env, self.name, "permitted", f"{self.in_use} in use")
            return (yield from factory())
        finally:
            if request.triggered:
                self.resource.release(request)
            else:
                request.cancel()  # out of the queue: never granted later to nobody
