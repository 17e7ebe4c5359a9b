"""What every service gets from the runtime: an inbox, send, request, publish.

A service runs as one SimPy process per replica. Each replica handles its
inbox one message at a time, spending a processing time drawn from its
distribution; waiting on a downstream reply does not block the replica (the
rest of the handling runs as its own process), just as a thread pool would.
Requests carry deadlines that propagate downstream, so a timed-out command
does not go on to move the machine later.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from sim_models.errors import TwinError
from sim_models.network import Latency, Network


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
        self.crashed = False
        self.hung: simpy.Event | None = None  # succeeds when the hang ends
        self.slowdown = 1.0

    def deliver(self, message: Message) -> None:
        if self.crashed:
            self.stats.lost += 1
            return
        self.inbox.put(message)
        queued = len(self.inbox.items)
        if queued > self.stats.max_queue:
            self.stats.max_queue = queued


class Bus:
    """Service-to-service messaging over the network: send, request, publish."""

    def __init__(self, env: simpy.Environment, network: Network) -> None:
        self.env = env
        self.network = network
        self.instances: dict[str, list[Instance]] = {}
        self._next_replica: dict[tuple[str, str], int] = defaultdict(int)
        self._subscribers: dict[str, list[str]] = defaultdict(list)
        self._pending: dict[int, simpy.Event] = {}
        self._ids = itertools.count(1)

    def add(self, instance: Instance) -> None:
        self.instances.setdefault(instance.service, []).append(instance)

    def subscribe(self, topic: str, service: str) -> None:
        """Each message on `topic` goes to one replica of `service` (round robin)."""
        self._subscribers[topic].append(service)

    def _pick(self, src: Instance, service: str) -> Instance:
        replicas = self.instances.get(service)
        if not replicas:
            raise TwinError(f"{src.name}: no service named {service!r}")
        key = (src.name, service)
        k = self._next_replica[key]
        self._next_replica[key] = k + 1
        return replicas[k % len(replicas)]

    def send(self, src: Instance, service: str, message: Message) -> bool:
        """Fire and forget to one replica (round robin). False when the network dropped it."""
        message.id = next(self._ids)
        dst = self._pick(src, service)
        return self.network.deliver(src.node, dst.node, dst.deliver, message)

    def request(
        self, src: Instance, service: str, message: Message, timeout_s: float
    ) -> Generator[simpy.Event, Any, Message]:
        """Send and wait for the reply. Raises RequestTimeout or RequestFailed.

        The request carries a deadline (now + timeout, or the caller's own
        deadline if that is sooner): a callee that gets to it too late drops it
        instead of doing work nobody waits for.
        """
        reply = self.env.event()
        message.id = next(self._ids)
        deadline = self.env.now + timeout_s
        if message.deadline is None or deadline < message.deadline:
            message.deadline = deadline
        self._pending[message.id] = reply
        dst = self._pick(src, service)
        self.network.deliver(src.node, dst.node, dst.deliver, message)
        timer = self.env.timeout(timeout_s)
        try:
            yield reply | timer
        finally:
            self._pending.pop(message.id, None)
        if not reply.triggered:
            raise RequestTimeout(f"{src.name} → {service}: no reply within {timeout_s * 1000:.0f} ms")
        answer: Message = reply.value
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

    def publish(self, src: Instance, topic: str, body: Any, issued_at: float) -> None:
        for service in self._subscribers.get(topic, ()):
            dst = self._pick(src, service)
            message = Message(topic, body, src.name, issued_at, next(self._ids))
            self.network.deliver(src.node, dst.node, dst.deliver, message)

    def _node_of(self, instance_name: str) -> str:
        service = instance_name.rsplit("#", 1)[0]
        for inst in self.instances.get(service, ()):
            if inst.name == instance_name:
                return inst.node
        raise TwinError(f"unknown instance {instance_name!r}")


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
                env.process(result)

    def handle(self, inst: Instance, message: Message) -> Generator[simpy.Event, Any, None] | None:
        """Handle one message; return a generator to continue asynchronously."""
        raise NotImplementedError
