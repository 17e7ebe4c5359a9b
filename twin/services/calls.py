"""Service-to-service calls: the one place where the patterns wrap a request.

A call from one service to another is composed, outermost first, as

    retry( breaker( bulkhead( timeout( exchange ) ) ) )

so a retry may pick another replica after a breaker refused one, a breaker
judges each attempt, and a timed-out attempt gives its bulkhead slot back.
There is one breaker per callee replica, and routing (through discovery when
the scenario has a registry, else round robin) skips replicas whose breaker is
open: one slow replica is cut out while its siblings carry on. A callee that
answers with an error (e.g. a refused plan) is healthy: that counts as a
success for its breaker and is never retried.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Protocol

import simpy

from servo_core.errors import TwinError
from sim_models.rng import component_rng
from twin.patterns.breaker import BreakerConfig, CallNotPermitted, CircuitBreaker, Transition
from twin.patterns.bulkhead import Bulkhead, BulkheadFull
from twin.patterns.retry import Retry, RetryConfig
from twin.services.errors import RequestFailed, RequestTimeout
from twin.services.messages import Message
from twin.services.messaging import MessageBus
from twin.services.replica import Replica

__all__ = ["CallPipeline", "CallPolicy", "CallSettings", "CallSnapshot", "RETRYABLE"]

RETRYABLE: tuple[type[BaseException], ...] = (RequestTimeout, CallNotPermitted, BulkheadFull)
"""What a retry tries again: the callee did not answer or was not asked. Error replies are final."""


@dataclass(frozen=True)
class CallSettings:
    """The patterns on calls from one service to another (SI units)."""

    caller: str
    callee: str
    timeout_s: float | None = None  # None: the caller's own request timeout
    retry: RetryConfig | None = None
    breaker: BreakerConfig | None = None
    bulkhead_max_concurrent: int | None = None
    bulkhead_max_wait_s: float = 0.0


@dataclass(frozen=True)
class CallSnapshot:
    caller: str
    callee: str
    calls: int
    errors: int  # calls that failed after all their attempts
    attempts: int
    retries: int
    rejected: int  # attempts refused by an open breaker or a full bulkhead
    timeouts: int
    latency_s: tuple[float, ...]  # successful calls, all attempts included


@dataclass
class _Counts:
    calls: int = 0
    errors: int = 0
    attempts: int = 0
    rejected: int = 0
    timeouts: int = 0
    latency_s: list[float] = field(default_factory=list)


class DiscoveryView(Protocol):
    """A caller replica's cached view of the registry."""

    def resolve(self, service: str) -> str: ...
    def started(self, instance: str) -> None: ...
    def finished(self, instance: str) -> None: ...


BreakerMoved = Callable[[str, str, Transition], None]  # (caller service, callee replica, transition)


class CallPolicy:
    """The patterns on calls from `settings.caller` to `settings.callee`."""

    def __init__(
        self,
        settings: CallSettings,
        env: simpy.Environment,
        seed: int,
        on_transition: BreakerMoved | None = None,
    ) -> None:
        self.settings = settings
        self.env = env
        self._on_transition = on_transition
        self.name = f"{settings.caller}_to_{settings.callee}"
        self.retry: Retry | None = None
        if settings.retry is not None:
            self.retry = Retry(env, settings.retry, component_rng(seed, f"retry:{self.name}"), name=self.name)
        self.bulkhead: Bulkhead | None = None
        if settings.bulkhead_max_concurrent is not None:
            self.bulkhead = Bulkhead(
                env, settings.bulkhead_max_concurrent, settings.bulkhead_max_wait_s, name=self.name
            )
        self.breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, instance: str) -> CircuitBreaker | None:
        config = self.settings.breaker
        if config is None:
            return None
        breaker = self.breakers.get(instance)
        if breaker is None:
            env = self.env
            hook = self._on_transition
            caller = self.settings.caller
            breaker = CircuitBreaker(
                f"{self.name}:{instance}",
                config,
                lambda: env.now,
                on_transition=None if hook is None else (lambda tr: hook(caller, instance, tr)),
            )
            self.breakers[instance] = breaker
        return breaker

    def open(self, instance: str) -> bool:
        """Whether routing should avoid `instance` (its breaker refuses calls now)."""
        breaker = self.breakers.get(instance)
        return breaker is not None and breaker.rejects_calls()


class CallPipeline:
    """Requests from one replica to a service, through the scenario's patterns for that call."""

    def __init__(
        self,
        messages: MessageBus,
        policies: dict[tuple[str, str], CallPolicy],
        discovery: Callable[[str], DiscoveryView] | None = None,
    ) -> None:
        self.messages = messages
        self.policies = policies
        self._discovery = discovery
        self._counts: dict[tuple[str, str], _Counts] = {}

    def request(
        self, src: Replica, service: str, message: Message, timeout_s: float
    ) -> Generator[simpy.Event, Any, Message]:
        """Send and wait for the reply. Raises RequestTimeout or RequestFailed (or, with
        patterns on this call, CallNotPermitted or BulkheadFull once retries are spent).

        Each attempt carries a deadline (now + timeout, or the caller's own deadline if
        sooner): a callee that gets to it too late drops it instead of doing work nobody
        waits for.
        """
        env = self.messages.env
        policy = self.policies.get((src.service, service))
        key = (src.service, service)
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = _Counts()
        counts.calls += 1
        start = env.now
        if policy is not None and policy.settings.timeout_s is not None:
            timeout_s = policy.settings.timeout_s

        def attempt() -> Generator[simpy.Event, Any, Message]:
            return self._attempt(src, service, message, timeout_s, policy, counts)

        try:
            if policy is not None and policy.retry is not None:
                answer = yield from policy.retry.call(attempt)
            else:
                answer = yield from attempt()
        except TwinError:
            counts.errors += 1
            raise
        counts.latency_s.append(env.now - start)
        return answer

    def _attempt(
        self,
        src: Replica,
        service: str,
        message: Message,
        timeout_s: float,
        policy: CallPolicy | None,
        counts: _Counts,
    ) -> Generator[simpy.Event, Any, Message]:
        env = self.messages.env
        counts.attempts += 1
        view = self._discovery(src.name) if self._discovery is not None else None
        dst = self._route(src, service, policy, view)
        breaker = policy.breaker(dst.name) if policy is not None else None
        if breaker is not None and not breaker.try_acquire():
            counts.rejected += 1
            raise CallNotPermitted(breaker.name, breaker.state)
        begun = env.now
        if view is not None:
            view.started(dst.name)
        exchange = self.messages.exchange
        try:
            if policy is not None and policy.bulkhead is not None:
                answer = yield from policy.bulkhead.call(lambda: exchange(src, dst, message, timeout_s))
            else:
                answer = yield from exchange(src, dst, message, timeout_s)
        except RequestFailed:
            if breaker is not None:
                breaker.record_success(env.now - begun)  # the callee is up: it answered
            raise
        except RequestTimeout:
            counts.timeouts += 1
            if breaker is not None:
                breaker.record_failure(env.now - begun)
            raise
        except BulkheadFull:
            counts.rejected += 1
            if breaker is not None:
                breaker.release()  # the callee was never asked: no judgement on it
            raise
        except BaseException:  # an interrupt: no judgement on the callee either
            if breaker is not None:
                breaker.release()
            raise
        finally:
            if view is not None:
                view.finished(dst.name)
        if breaker is not None:
            breaker.record_success(env.now - begun)
        return answer

    def _route(
        self, src: Replica, service: str, policy: CallPolicy | None, view: DiscoveryView | None
    ) -> Replica:
        """The replica to call: through the caller's discovery view when there is one, else
        round robin; replicas whose breaker is open are passed over while others remain."""
        replicas = self.messages.replicas_of(src, service)
        choice = replicas[0]
        for _ in range(len(replicas)):
            if view is not None:
                choice = self.messages.replica(view.resolve(service))
            else:
                choice = self.messages.next_replica(src, service)
            if policy is None or not policy.open(choice.name):
                return choice
        return choice

    def snapshot(self) -> list[CallSnapshot]:
        """What every caller service saw of every callee service, in name order."""
        return [
            CallSnapshot(
                caller,
                callee,
                c.calls,
                c.errors,
                c.attempts,
                c.attempts - c.calls if c.attempts > c.calls else 0,
                c.rejected,
                c.timeouts,
                tuple(c.latency_s),
            )
            for (caller, callee), c in sorted(self._counts.items())
        ]
