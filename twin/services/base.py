"""What every service gets from the runtime: an inbox, requests and replies to other services.

A service runs as one SimPy process per replica. Each replica handles its
inbox one message at a time, spending a processing time drawn from its
distribution; waiting on a downstream reply does not block the replica (the
rest of the handling runs as its own process), just as a thread pool would.
Requests carry deadlines that propagate downstream, so a timed-out command
does not go on to move the machine later. One-way traffic (joint states,
alarms, the e-stop) goes over the event bus, twin.patterns.eventbus.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import simpy

from sim_models.errors import TwinError
from sim_models.network import Latency, Network
from twin.observe.trace import Tracer
from twin.patterns.breaker import CallNotPermitted
from twin.patterns.bulkhead import BulkheadFull
from twin.services.calls import new_call_stats


class RequestTimeout(TwinError):
    """No reply arrived within the request's timeout."""


class RequestFailed(TwinError):
    """The callee answered with an error."""


@dataclass(slots=True)
class Message:
    kind: str
    body: Any
    sender: str
    issued_at: float  # s, when the original operator command was sent
    id: int = 0
    reply_to: int | None = None
    error: str | None = None
    deadline: float | None = None  # s; past it nobody waits for the answer any more
    trace_id: int = 0  # the operator command this message serves (0: none yet)
    span_id: int = 0  # the span of the hop that carried it: the parent of its own calls
    token: str = ""  # the client's credential, for the gateway

    def follow(self, kind: str, body: Any, sender: str) -> Message:
        """A downstream message on behalf of this one: same command, deadline and trace."""
        return Message(
            kind,
            body,
            sender,
            self.issued_at,
            deadline=self.deadline,
            trace_id=self.trace_id,
            span_id=self.span_id,
        )


@dataclass
class ServiceStats:
    handled: int = 0
    max_queue: int = 0
    errors: int = 0
    expired: int = 0  # messages dropped unhandled because their deadline had passed
    lost: int = 0  # messages that reached a crashed replica


class Instance:
    """One replica of a service, placed on a node."""

    def __init__(
        self, env: simpy.Environment, service: str, index: int, node: str, processing: Latency
    ) -> None:
        self.env = env
        self.service = service
        self.name = f"{service}#{index}"
        self.node = node
        self.inbox: simpy.Store = simpy.Store(env)
        self.processing = processing
        self.stats = ServiceStats()
        # Fault injection: a crashed replica loses what reaches it; a hung one takes
        # messages and answers none until it recovers; a slow one multiplies its processing.
        self.down = 0  # how many causes (crash faults, an update) hold the replica down
        self.hung: simpy.Event | None = None  # succeeds when the hang ends
        self.slowdown = 1.0
        self.in_flight = 0  # requests being handled (waiting on their own downstream calls)
        self.stopped = False  # taken out for an update: no heartbeats

    @property
    def crashed(self) -> bool:
        return self.down > 0

    def deliver(self, message: Message) -> None:
        if self.crashed:
            self.stats.lost += 1
            return
        self.inbox.put(message)
        queued = len(self.inbox.items)
        if queued > self.stats.max_queue:
            self.stats.max_queue = queued


if TYPE_CHECKING:
    from twin.services.registry import Discovery


class Bus:
    """Service-to-service requests over the network, through the patterns and discovery."""

    def __init__(self, env: simpy.Environment, network: Network) -> None:
        self.env = env
        self.network = network
        self.instances: dict[str, list[Instance]] = {}
        self._next_replica: dict[tuple[str, str], int] = defaultdict(int)
        self._pending: dict[int, simpy.Event] = {}
        self._ids = itertools.count(1)
        self._by_name: dict[str, Instance] = {}
        self.policies: dict[tuple[str, str], Any] = {}  # (caller, callee) -> CallPolicy
        self.call_stats = new_call_stats()
        self.discovery: Discovery | None = None
        self.tracer: Tracer | None = None

    def add(self, instance: Instance) -> None:
        self.instances.setdefault(instance.service, []).append(instance)
        self._by_name[instance.name] = instance

    def _pick(self, src: Instance, service: str) -> Instance:
        replicas = self.instances.get(service)
        if not replicas:
            raise TwinError(f"{src.name}: no service named {service!r}")
        key = (src.name, service)
        k = self._next_replica[key]
        self._next_replica[key] = k + 1
        return replicas[k % len(replicas)]

    def request(
        self, src: Instance, service: str, message: Message, timeout_s: float
    ) -> Generator[simpy.Event, Any, Message]:
        """Send and wait for the reply. Raises RequestTimeout or RequestFailed (or, with
        patterns on this call, CallNotPermitted or BulkheadFull once retries are spent).

        The call goes through the patterns the scenario sets for (caller, callee); see
        twin.services.calls. Each attempt carries a deadline (now + timeout, or the
        caller's own deadline if sooner): a callee that gets to it too late drops it
        instead of doing work nobody waits for.
        """
        policy = self.policies.get((src.service, service))
        stats = self.call_stats[(src.service, service)]
        stats.calls += 1
        start = self.env.now
        timeout = policy.timeout_s if policy is not None and policy.timeout_s is not None else timeout_s

        def attempt() -> Generator[simpy.Event, Any, Message]:
            return self._attempt(src, service, message, timeout, policy, stats)

        try:
            if policy is not None and policy.retry is not None:
                answer = yield from policy.retry.call(attempt)
            else:
                answer = yield from attempt()
        except TwinError:
            stats.errors += 1
            raise
        stats.latency_s.append(self.env.now - start)
        return answer

    def _attempt(
        self, src: Instance, service: str, message: Message, timeout_s: float, policy: Any, stats: Any
    ) -> Generator[simpy.Event, Any, Message]:
        stats.attempts += 1
        if stats.attempts > stats.calls:
            stats.retries = stats.attempts - stats.calls
        client = self.discovery.client(src.name) if self.discovery is not None else None
        dst = self._route(src, service, policy, client)
        breaker = policy.breaker(dst.name) if policy is not None else None
        if breaker is not None and not breaker.try_acquire():
            stats.rejected += 1
            raise CallNotPermitted(breaker.name, breaker.state)
        begun = self.env.now
        if client is not None:
            client.started(dst.name)
        try:
            if policy is not None and policy.bulkhead is not None:
                answer = yield from policy.bulkhead.call(lambda: self._exchange(src, dst, message, timeout_s))
            else:
                answer = yield from self._exchange(src, dst, message, timeout_s)
        except RequestFailed:
            if breaker is not None:
                breaker.record_success(self.env.now - begun)  # the callee is up: it answered
            raise
        except RequestTimeout:
            stats.timeouts += 1
            if breaker is not None:
                breaker.record_failure(self.env.now - begun)
            raise
        except BulkheadFull:
            stats.rejected += 1
            if breaker is not None:
                breaker.release()  # the callee was never asked: no judgement on it
            raise
        except BaseException:  # an interrupt: no judgement on the callee either
            if breaker is not None:
                breaker.release()
            raise
        finally:
            if client is not None:
                client.finished(dst.name)
        if breaker is not None:
            breaker.record_success(self.env.now - begun)
        return answer

    def _route(self, src: Instance, service: str, policy: Any, client: Any) -> Instance:
        """The replica to call: through the caller's discovery view (`client`) when there is
        one, else round robin; replicas whose breaker is open are passed over while others remain."""
        replicas = self.instances.get(service)
        if not replicas:
            raise TwinError(f"{src.name}: no service named {service!r}")
        choice = None
        for _ in range(len(replicas)):
            if client is not None:
                choice = self._by_name[client.resolve(service)]
            else:
                choice = self._pick(src, service)
            if policy is None or not policy.open(choice.name):
                return choice
        assert choice is not None
        return choice

    def _exchange(
        self, src: Instance, dst: Instance, message: Message, timeout_s: float
    ) -> Generator[simpy.Event, Any, Message]:
        """One attempt: a fresh copy of the message to `dst`, and its reply or a timeout."""
        env = self.env
        m = message  # a fresh copy per attempt (built directly: this is the message path)
        msg = Message(
            m.kind,
            m.body,
            m.sender,
            m.issued_at,
            next(self._ids),
            None,
            None,
            m.deadline,
            m.trace_id,
            0,
            m.token,
        )
        deadline = env.now + timeout_s
        if msg.deadline is None or deadline < msg.deadline:
            msg.deadline = deadline
        parent = message.span_id
        span = self.tracer.new_id() if self.tracer is not None else 0
        msg.span_id = span
        if not msg.trace_id:
            msg.trace_id = span
        reply = env.event()
        self._pending[msg.id] = reply
        sent = env.now
        self.network.deliver(src.node, dst.node, dst.deliver, msg)
        # One event that the reply or the timer settles first (cheaper than `reply | timer`).
        env.timeout(timeout_s).callbacks.append(lambda _timer: reply.triggered or reply.succeed(None))
        try:
            yield reply
        finally:
            self._pending.pop(msg.id, None)
            if self.tracer is not None:
                ok = reply.triggered and reply.value is not None and reply.value.error is None
                self.tracer.span(  # caller and callee show as the flow arrow's two ends
                    msg.kind if ok else f"{msg.kind} (failed)",
                    dst.service,
                    dst.node,
                    sent,
                    env.now,
                    trace_id=msg.trace_id,
                    parent=parent or None,
                    span_id=span,
                )
        answer: Message | None = reply.value
        if answer is None:
            raise RequestTimeout(f"{src.name} → {dst.name}: no reply within {timeout_s * 1000:.0f} ms")
        if answer.error is not None:
            raise RequestFailed(answer.error)
        return answer

    def reply(self, src: Instance, request: Message, body: Any = None, error: str | None = None) -> None:
        """Answer a request; the answer crosses the network back to the caller's node."""
        answer = Message("reply", body, src.name, request.issued_at, next(self._ids), request.id, error)
        caller_node = self._node_of(request.sender)
        self.network.deliver(src.node, caller_node, self._resolve, answer)

    def _resolve(self, answer: Message) -> None:
        event = self._pending.get(answer.reply_to)  # type: ignore[arg-type]
        if event is not None and not event.triggered:
            event.succeed(answer)

    def _node_of(self, instance_name: str) -> str:
        inst = self._by_name.get(instance_name)
        if inst is None:
            raise TwinError(f"unknown instance {instance_name!r}")
        return inst.node


@dataclass
class Service:
    """Base of the services: one handler per message kind, run per replica."""

    bus: Bus
    replicas: list[Instance] = field(default_factory=list)

    def start(self) -> None:
        for inst in self.replicas:
            inst.env.process(self._serve(inst))

    def _serve(self, inst: Instance) -> Generator[simpy.Event, Any, None]:
        env = inst.env
        while True:
            message: Message = yield inst.inbox.get()
            delay = inst.processing.sample() * inst.slowdown
            if delay > 0:
                yield env.timeout(delay)
            if inst.hung is not None:
                yield inst.hung  # the message waits with the replica
            if inst.crashed:
                inst.stats.lost += 1
                continue
            if message.deadline is not None and env.now > message.deadline:
                inst.stats.expired += 1
                continue
            inst.stats.handled += 1
            result = self.handle(inst, message)
            if result is not None:
                env.process(self._track(inst, result))

    @staticmethod
    def _track(inst: Instance, work: Generator[simpy.Event, Any, None]) -> Generator[simpy.Event, Any, None]:
        """Count the replica's in-flight work, so that a rolling update can drain it."""
        inst.in_flight += 1
        try:
            yield from work
        finally:
            inst.in_flight -= 1

    def handle(self, inst: Instance, message: Message) -> Generator[simpy.Event, Any, None] | None:
        """Handle one message; return a generator to continue asynchronously."""
        raise NotImplementedError
