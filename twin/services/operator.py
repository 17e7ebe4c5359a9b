"""The operator: sends the task's commands to the gateway at their times, and owns the e-stop."""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from typing import Any

import simpy
from pydantic import Field, SecretStr

from servo_core.errors import TwinError
from twin.control.commands import Command, EStop
from twin.services.api import Counter, Histogram, Service, ServiceParams

__all__ = ["Operator", "OperatorParams"]


class OperatorParams(ServiceParams):
    request_timeout_ms: float = Field(default=1000.0, gt=0)
    token: SecretStr | None = Field(default=None, description="sent with every command, for the gateway")
    gateway: str = Field(default="gateway", description="the service the commands go to")


class Operator(Service[OperatorParams]):
    """Issues the scenario's task; the run's `commands` metrics are its outcomes."""

    Params = OperatorParams
    description = "sends the task's commands to the gateway at their times"
    sent = Counter("commands sent")
    completed = Counter("commands the gateway accepted")
    failed = Counter("commands answered with an error or not at all")
    accepted_latency = Histogram("from sending a command to the gateway's reply")

    def start(self) -> None:
        if self.ctx.index != 0:
            return  # one operator issues the task, whatever the replicas
        for at_s, command in self.ctx.machine.schedule:
            self.ctx.at(at_s, partial(self._issue, command))

    def _issue(self, command: Command) -> Generator[simpy.Event, Any, None]:
        ctx = self.ctx
        self.sent.inc()
        start = ctx.now
        try:
            yield from ctx.call(
                self.params.gateway,
                "command",
                command,
                timeout_s=self.params.request_timeout_ms / 1000.0,
                token=self.params.token.get_secret_value() if self.params.token is not None else "",
            )
        except TwinError:  # a timeout, an error reply, a refusal by a pattern
            self.failed.inc()
            ctx.replica_errors(1)
        else:
            self.completed.inc()
            self.accepted_latency.observe(ctx.now - start)

    def press_estop(self) -> None:
        """The operator's emergency stop: published on the `estop` topic, at least once."""
        self.ctx.publish("estop", EStop(self.ctx.now, self.ctx.name))
