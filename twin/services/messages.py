"""What travels between services: requests, replies and their bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Message", "service_of"]


def service_of(replica_name: str) -> str:
    """`planner#1` -> `planner`."""
    return replica_name.rsplit("#", 1)[0]


@dataclass(slots=True)
class Message:
    kind: str
    body: Any
    sender: str  # the sending replica, e.g. "operator#0"
    issued_at: float  # s, when the original command was sent
    id: int = 0
    reply_to: int | None = None
    error: str | None = None
    deadline: float | None = None  # s; past it nobody waits for the answer any more
    trace_id: int = 0  # the command this message serves (0: none yet)
    span_id: int = 0  # the span of the hop that carried it: the parent of its own calls
    token: str = ""  # the client's credential, for the gateway; never traced or reported
    refused: bool = False  # an error reply that refuses the request (the callee is healthy)

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

    def __repr__(self) -> str:  # never show the token
        return f"Message({self.kind!r} from {self.sender}, id={self.id})"
