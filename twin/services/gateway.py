"""The gateway: the single entry for operator commands.

It checks that a message is a command it knows and forwards it to the
planner, answering with a clear error instead of hanging when the planner
does not answer in time.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy

from sim_models.errors import TwinError
from twin.services.base import Instance, Message, Service
from twin.services.commands import MoveCommand, SineCommand


@dataclass
class Gateway(Service):
    timeout_s: float = 0.5

    def handle(self, inst: Instance, message: Message) -> Generator[simpy.Event, Any, None] | None:
        if message.kind != "command" or not isinstance(message.body, MoveCommand | SineCommand):
            inst.stats.errors += 1
            self.bus.reply(inst, message, error=f"gateway: unknown request {message.kind!r}")
            return None
        return self._forward(inst, message)

    def _forward(self, inst: Instance, message: Message) -> Generator[simpy.Event, Any, None]:
        forward = message.follow("plan", message.body, inst.name)
        try:
            answer = yield from self.bus.request(inst, "planner", forward, self.timeout_s)
        except TwinError as exc:  # a timeout, an error reply, a refusal by a pattern
            inst.stats.errors += 1
            self.bus.reply(inst, message, error=f"gateway: {exc}")
        else:
            self.bus.reply(inst, message, body=answer.body)
