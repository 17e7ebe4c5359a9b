"""The message bus: knows the replicas, carries one request and its reply across the network.

It only routes and exchanges; the patterns around a call (retry, breaker,
bulkhead, timeout, discovery) live in twin.services.calls.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator
from typing import Any

import simpy

from servo_core.errors import TwinError
from sim_models.network import Network
from twin.observe.trace import Tracer
from twin.services.errors import RequestFailed, RequestRefused, RequestTimeout
from twin.services.messages import Message
from twin.services.replica import Replica

__all__ = ["MessageBus"]


class MessageBus:
    """Replicas by service, and request/reply exchanges between them over the network."""

    def __init__(self, env: simpy.Environment, network: Network, tracer: Tracer | None = None) -> None:
        self.env = env
        self.network = network
        self.tracer = tracer
        self.replicas: dict[str, list[Replica]] = {}
        self._by_name: dict[str, Replica] = {}
        self._pending: dict[int, simpy.Event] = {}
        self._ids = itertools.count(1)
        self._round_robin: dict[tuple[str, str], int] = {}

    def add(self, replica: Replica) -> None:
        self.replicas.setdefault(replica.service, []).append(replica)
        self._by_name[replica.name] = replica

    def replica(self, name: str) -> Replica:
        found = self._by_name.get(name)
        if found is None:
            raise TwinError(f"unknown replica {name!r}")
        return found

    def replicas_of(self, src: Replica, service: str) -> list[Replica]:
        replicas = self.replicas.get(service)
        if not replicas:
            raise TwinError(f"{src.name}: no service named {service!r}")
        return replicas

    def next_replica(self, src: Replica, service: str) -> Replica:
        """Round robin over the service's replicas, per caller replica."""
        replicas = self.replicas_of(src, service)
        key = (src.name, service)
        k = self._round_robin.get(key, 0)
        self._round_robin[key] = k + 1
        return replicas[k % len(replicas)]

    @property
    def pending(self) -> int:
        """Requests waiting for their reply."""
        return len(self._pending)

    def exchange(
        self, src: Replica, dst: Replica, message: Message, timeout_s: float
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
        tracer = self.tracer
        span = tracer.new_id() if tracer is not None else 0
        msg.span_id = span
        if not msg.trace_id:
            msg.trace_id = span
        reply = env.event()
        self._pending[msg.id] = reply
        sent = env.now
        self.network.deliver(src.node, dst.node, dst.deliver, msg)
        # One event that the reply or the timer settles first (cheaper than `reply | timer`).
        env.timeout(timeout_s).callbacks.append(lambda _timer: _settle(reply))
        try:
            yield reply
        finally:
            self._pending.pop(msg.id, None)
            if tracer is not None:
                answer = reply.value if reply.triggered else None
                if answer is None:
                    outcome = "timeout"
                elif answer.error is None:
                    outcome = "ok"
                else:
                    outcome = "refused" if answer.refused else "error"
                tracer.span(  # caller and callee show as the flow arrow's two ends
                    msg.kind,
                    dst.service,
                    dst.node,
                    sent,
                    env.now,
                    trace_id=msg.trace_id,
                    parent=parent or None,
                    span_id=span,
                    outcome=outcome,
                )
        answer_msg: Message | None = reply.value
        if answer_msg is None:
            raise RequestTimeout(f"{src.name} → {dst.name}: no reply within {timeout_s * 1000:.0f} ms")
        if answer_msg.error is not None:
            raise (RequestRefused if answer_msg.refused else RequestFailed)(answer_msg.error)
        return answer_msg

    def reply(
        self,
        src: Replica,
        request: Message,
        body: Any = None,
        error: str | None = None,
        refused: bool = False,
    ) -> None:
        """Answer a request; the answer crosses the network back to the caller's node."""
        answer = Message("reply", body, src.name, request.issued_at, next(self._ids), request.id, error)
        answer.refused = refused
        caller = self._by_name.get(request.sender)
        if caller is None:
            raise TwinError(f"unknown replica {request.sender!r}")
        self.network.deliver(src.node, caller.node, self._resolve, answer)

    def _resolve(self, answer: Message) -> None:
        assert answer.reply_to is not None
        event = self._pending.get(answer.reply_to)
        if event is not None and not event.triggered:
            event.succeed(answer)


def _settle(reply: simpy.Event) -> None:
    """The timer's end: no reply (None) unless the reply came first."""
    if not reply.triggered:
        reply.succeed(None)
