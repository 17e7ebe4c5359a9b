"""The runtime side of the service API: a replica's context, its inbox loop, and failures.

Every service, built-in or a user's, is hosted the same way: one object per
replica, fed from the replica's inbox after its processing time, with
crashes, hangs and slowdowns applied by the replica's own fault methods.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from hw_adapters import ServoBus
from servo_core.errors import TwinError
from sim_models.rng import component_rng
from twin.observe.trace import Tracer
from twin.patterns.breaker import CallNotPermitted
from twin.patterns.bulkhead import BulkheadFull
from twin.patterns.eventbus import Event, EventBus, SubscriberConfig, TopicConfig
from twin.services.api import MachineInfo, P, Service, ServiceContext, check_body
from twin.services.calls import CallPipeline
from twin.services.errors import Refused, RequestRefused, RequestTimeout
from twin.services.messages import Message
from twin.services.messaging import MessageBus
from twin.services.replica import Replica

__all__ = ["EventHub", "Hosting", "ReplicaContext", "ServiceFailure", "serve"]


@dataclass(frozen=True)
class ServiceFailure:
    """An exception raised by a service's own code."""

    service: str
    replica: str
    t: float
    error: str  # "ValueError: ..."


class EventHub:
    """The event bus, with the scenario's settings per topic and per (service, topic) queue."""

    def __init__(
        self,
        bus: EventBus,
        topics: dict[str, TopicConfig],
        queues: dict[tuple[str, str], SubscriberConfig],
    ) -> None:
        self.bus = bus
        self._topics = topics
        self._queues = queues
        self._declared: set[tuple[str, str]] = set()  # (replica, topic) pairs already declared

    def declare(self, topic: str) -> None:
        config = self._topics.get(topic, TopicConfig())
        self.bus.topic(topic, config)
        if config.dead_letter_topic is not None:
            self.bus.topic(config.dead_letter_topic)

    def publish(self, replica: Replica, topic: str, payload: Any) -> simpy.Event:
        key = (replica.name, topic)
        if key not in self._declared:  # the first time only: this is the message path
            self._declared.add(key)
            self.declare(topic)
        return self.bus.publish(topic, replica.name, replica.node, payload)

    def subscribe(self, replica: Replica, topic: str) -> Any:
        self.declare(topic)
        config = self._queues.get((replica.service, topic), SubscriberConfig())
        return self.bus.subscribe(topic, f"{replica.name}:{topic}", replica.node, config)


@dataclass
class Hosting:
    """What the assembly hands every replica's context."""

    env: simpy.Environment
    seed: int
    messages: MessageBus
    calls: CallPipeline
    events: EventHub
    tracer: Tracer | None
    machine: MachineInfo
    service_classes: dict[str, type[Service[Any]]] = field(default_factory=dict)  # by service name
    failures: list[ServiceFailure] = field(default_factory=list)


class ReplicaContext(ServiceContext[P]):
    def __init__(
        self,
        hosting: Hosting,
        replica: Replica,
        params: P,
        servo_bus: ServoBus | None,
        default_timeout_s: float,
    ) -> None:
        self._hosting = hosting
        self.replica = replica
        self.name = replica.name
        self.service = replica.service
        self.node = replica.node
        self.index = replica.index
        self.params = params
        self.rng: np.random.Generator = component_rng(hosting.seed, f"service:{replica.name}:user")
        self._servo_bus = servo_bus
        self._default_timeout_s = default_timeout_s
        self.machine = hosting.machine

    def request_schema(self, service: str, kind: str) -> Any:
        cls = self._hosting.service_classes.get(service)
        if cls is None:
            raise Refused(f"no service named {service!r}")
        kinds = cls.request_kinds()
        if kind not in kinds:
            raise Refused(
                f"{service} handles no {kind!r} requests; it handles: {', '.join(sorted(kinds)) or 'none'}"
            )
        return kinds[kind]

    @property
    def env(self) -> simpy.Environment:
        return self._hosting.env

    @property
    def now(self) -> float:
        return float(self._hosting.env.now)

    @property
    def up(self) -> bool:
        return not self.replica.crashed

    def replica_errors(self, n: int = 1) -> None:
        self.replica.errors += n

    def sleep(self, seconds: float) -> simpy.Event:
        return self._hosting.env.timeout(seconds)

    def call(
        self,
        service: str,
        kind: str,
        body: Any = None,
        *,
        on_behalf_of: Message | None = None,
        timeout_s: float | None = None,
        token: str = "",
    ) -> Generator[simpy.Event, Any, Any]:
        timeout = self._default_timeout_s if timeout_s is None else timeout_s
        if on_behalf_of is not None:
            message = on_behalf_of.follow(kind, body, self.name)
            message.token = token
            answer = yield from self._hosting.calls.request(self.replica, service, message, timeout)
            return answer.body
        # A call of the service's own: a root span on its track, the parent of the hops it causes.
        message = Message(kind, body, self.name, self.now, token=token)
        tracer = self._hosting.tracer
        root = tracer.new_id() if tracer is not None else 0
        message.trace_id = message.span_id = root
        start, outcome = self.now, "ok"
        try:
            answer = yield from self._hosting.calls.request(self.replica, service, message, timeout)
        except RequestTimeout:
            outcome = "timeout"
            raise
        except (RequestRefused, CallNotPermitted, BulkheadFull):
            outcome = "refused"
            raise
        except TwinError:
            outcome = "error"
            raise
        finally:
            if tracer is not None:
                tracer.span(
                    f"{kind} → {service}",
                    self.service,
                    self.node,
                    start,
                    self.now,
                    trace_id=root,
                    span_id=root,
                    outcome=outcome,
                )
        return answer.body

    def publish(self, topic: str, payload: Any) -> simpy.Event:
        return self._hosting.events.publish(self.replica, topic, payload)

    def subscribe(self, topic: str, handler: Callable[[Event], Any]) -> None:
        subscription = self._hosting.events.subscribe(self.replica, topic)
        self._hosting.env.process(self._consume(subscription, handler))

    def _consume(
        self, subscription: Any, handler: Callable[[Event], Any]
    ) -> Generator[simpy.Event, Any, None]:
        env, replica = self._hosting.env, self.replica
        while True:
            event = yield subscription.get()
            delay = replica.processing.sample() * replica.slowdown
            if delay > 0:
                yield env.timeout(delay)
            while (hung := replica.hung_until()) is not None:
                yield hung
            if replica.crashed:
                replica.lost += 1
                continue  # not acknowledged: with QoS 1 it comes again
            replica.handled += 1
            ok = yield from self._guarded(handler, event)
            if ok:
                subscription.ack(event)

    def every(self, period_s: float, work: Callable[[], Any], *, start_s: float = 0.0) -> None:
        if not period_s > 0:
            raise TwinError(f"{self.name}: every() needs a period above 0 s, got {period_s!r}")
        self._hosting.env.process(self._periodic(period_s, work, start_s))

    def _periodic(
        self, period_s: float, work: Callable[[], Any], start_s: float
    ) -> Generator[simpy.Event, Any, None]:
        env = self._hosting.env
        next_t = max(start_s, env.now)
        while True:
            yield env.timeout(next_t - env.now)
            if not self.replica.crashed and self.replica.hung_until() is None:
                yield from self._guarded(work)
            next_t += period_s
            while next_t < env.now:  # work that overran skips the periods it covered
                next_t += period_s

    def at(self, t_s: float, work: Callable[[], Any]) -> None:
        env = self._hosting.env

        def once() -> Generator[simpy.Event, Any, None]:
            yield env.timeout(max(0.0, t_s - env.now))
            yield from self._guarded(work)

        env.process(once())

    def spawn(self, work: Generator[simpy.Event, Any, Any]) -> simpy.Process:
        def run() -> Generator[simpy.Event, Any, None]:
            yield from self._guarded(lambda: work)

        return self._hosting.env.process(run())

    @property
    def servo_bus(self) -> ServoBus:
        if self._servo_bus is None:
            raise TwinError(
                f"service {self.service!r} was not given the servo bus by the scenario "
                "(only the service with servo_bus: true may touch servos)"
            )
        return self._servo_bus

    def _guarded(self, work: Callable[..., Any], *args: Any) -> Generator[simpy.Event, Any, bool]:
        """Run the service's own code; an exception is the service's failure, not the run's."""
        try:
            result = work(*args)
            if isinstance(result, Generator):
                yield from result
        except (simpy.Interrupt, GeneratorExit):
            raise
        except Exception as exc:  # noqa: BLE001 - a user's bug must not crash the run
            self.fail(exc)
            return False
        return True

    def fail(self, exc: BaseException) -> str:
        """Record an exception raised by this service's code; returns its text."""
        text = f"{type(exc).__name__}: {exc}"
        self.replica.failures += 1
        self._hosting.failures.append(ServiceFailure(self.service, self.name, self.now, text))
        tracer = self._hosting.tracer
        if tracer is not None:
            tracer.instant(
                f"failure: {type(exc).__name__}", self.service, self.node, self.now, args={"error": text}
            )
        return text


def serve(
    ctx: ReplicaContext[Any], service: Service[Any], hosting: Hosting
) -> Generator[simpy.Event, Any, None]:
    """A replica's inbox loop: one message at a time, each after the processing time."""
    env, replica, messages = hosting.env, ctx.replica, hosting.messages
    while True:
        message: Message = yield replica.inbox.get()
        delay = replica.processing.sample() * replica.slowdown
        if delay > 0:
            yield env.timeout(delay)
        while (hung := replica.hung_until()) is not None:
            yield hung  # the message waits with the replica
        if replica.crashed:
            replica.lost += 1
            continue
        if message.deadline is not None and env.now > message.deadline:
            replica.expired += 1
            if hosting.tracer is not None:
                hosting.tracer.instant(
                    f"{message.kind} expired",
                    replica.service,
                    replica.node,
                    env.now,
                    args={"from": message.sender},
                )
            continue
        replica.handled += 1
        _dispatch(ctx, service, messages, message)


def _dispatch(
    ctx: ReplicaContext[Any], service: Service[Any], messages: MessageBus, message: Message
) -> None:
    replica = ctx.replica
    found = service.handler(message.kind)
    try:
        if found is None:
            known = ", ".join(service.kinds_handled()) or "none"
            raise Refused(f"unknown request {message.kind!r}; {ctx.service} handles: {known}")
        handler, expected = found
        message.body = check_body(ctx.service, message.kind, expected, message.body)
        result = handler(message)
    except TwinError as exc:
        _answer_error(ctx, messages, message, exc)
        return
    except Exception as exc:  # noqa: BLE001 - the service's failure, answered as an error
        _answer_failure(ctx, messages, message, exc)
        return
    if isinstance(result, Generator):
        ctx.env.process(_finish(ctx, messages, message, result))
    else:
        messages.reply(replica, message, body=result)


def _finish(
    ctx: ReplicaContext[Any], messages: MessageBus, message: Message, work: Generator[simpy.Event, Any, Any]
) -> Generator[simpy.Event, Any, None]:
    replica = ctx.replica
    replica.in_flight += 1  # so that a rolling update can drain it
    try:
        body = yield from work
    except TwinError as exc:
        _answer_error(ctx, messages, message, exc)
    except (simpy.Interrupt, GeneratorExit):
        raise
    except Exception as exc:  # noqa: BLE001
        _answer_failure(ctx, messages, message, exc)
    else:
        messages.reply(replica, message, body=body)
    finally:
        replica.in_flight -= 1


def _answer_error(ctx: ReplicaContext[Any], messages: MessageBus, message: Message, exc: TwinError) -> None:
    ctx.replica.errors += 1
    refused = isinstance(exc, Refused)
    messages.reply(ctx.replica, message, error=f"{ctx.service}: {exc}", refused=refused)


def _answer_failure(ctx: ReplicaContext[Any], messages: MessageBus, message: Message, exc: Exception) -> None:
    ctx.replica.errors += 1
    text = ctx.fail(exc)
    messages.reply(ctx.replica, message, error=f"{ctx.service} failed: {text}")
