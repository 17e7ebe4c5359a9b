"""The operator: sends the task's commands to the gateway at their times."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import simpy

from sim_models.errors import TwinError
from twin.services.base import Instance, Message, Service
from twin.services.commands import Command, EStop


@dataclass
class CommandOutcome:
    at_s: float
    ok: bool
    error: str | None = None
    reply_s: float | None = None


@dataclass
class Operator(Service):
    schedule: Sequence[tuple[float, Command]] = ()
    timeout_s: float = 1.0
    token: str | None = None
    events: Any = None  # the EventBus, for the e-stop

    def press_estop(self) -> None:
        """The operator's emergency stop: published on the `estop` topic, at least once."""
        inst = self.replicas[0]
        self.events.publish("estop", inst.name, inst.node, EStop(inst.env.now, inst.name))

    outcomes: list[CommandOutcome] = field(default_factory=list)

    def start(self) -> None:
        inst = self.replicas[0]
        for at_s, command in self.schedule:
            inst.env.process(self._issue(inst, at_s, command))

    def _issue(self, inst: Instance, at_s: float, command: Command) -> Generator[simpy.Event, Any, None]:
        env = inst.env
        yield env.timeout(at_s)
        message = Message("command", command, inst.name, env.now, token=self.token or "")
        outcome = CommandOutcome(at_s, ok=False)
        self.outcomes.append(outcome)
        try:
            yield from self.bus.request(inst, "gateway", message, self.timeout_s)
        except TwinError as exc:  # a timeout, an error reply, a refusal by a pattern
            outcome.error = str(exc)
            inst.stats.errors += 1
        else:
            outcome.ok = True
        outcome.reply_s = env.now - at_s
