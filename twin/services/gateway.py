"""The gateway: the single entry for operator commands.

It refuses clients it does not know (a token per client, when the scenario
sets any), commands beyond its rate limit, and requests it does not know; it
forwards the rest to the planner through the call's patterns and discovery,
answering with a clear error instead of hanging when the planner does not
answer in time.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from sim_models.errors import TwinError
from twin.patterns.rate_limiter import RateLimiter
from twin.services.base import Instance, Message, Service
from twin.services.commands import MoveCommand, SineCommand


@dataclass
class Gateway(Service):
    timeout_s: float = 0.5
    clients: dict[str, str] = field(default_factory=dict)  # client service -> token
    limiter: RateLimiter | None = None
    unauthorized: int = 0
    rate_limited: int = 0

    def handle(self, inst: Instance, message: Message) -> Generator[simpy.Event, Any, None] | None:
        client = message.sender.rsplit("#", 1)[0]
        if self.clients and self.clients.get(client) != message.token:
            self.unauthorized += 1
            return self._refuse(inst, message, f"gateway: client {client!r} is not authorized")
        if message.kind != "command" or not isinstance(message.body, MoveCommand | SineCommand):
            return self._refuse(inst, message, f"gateway: unknown request {message.kind!r}")
        if self.limiter is not None and not self.limiter.try_acquire():
            self.rate_limited += 1
            return self._refuse(inst, message, "gateway: rate limit exceeded")
        return self._forward(inst, message)

    def _refuse(self, inst: Instance, message: Message, error: str) -> None:
        inst.stats.errors += 1
        self.bus.reply(inst, message, error=error)

    def _forward(self, inst: Instance, message: Message) -> Generator[simpy.Event, Any, None]:
        forward = message.follow("plan", message.body, inst.name)
        try:
            answer = yield from self.bus.request(inst, "planner", forward, self.timeout_s)
        except TwinError as exc:  # a timeout, an error reply, a refusal by a pattern
            inst.stats.errors += 1
            self.bus.reply(inst, message, error=f"gateway: {exc}")
        else:
            self.bus.reply(inst, message, body=answer.body)
