"""One replica of a service, placed on a node, and the faults that act on it.

Faults act through methods that return an undo; causes stack, so a replica
held down by a crash and by an update stays down until both let go.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import simpy

from sim_models.network import Latency
from twin.services.messages import Message

__all__ = ["Replica", "ReplicaSnapshot", "Undo"]

Undo = Callable[[], None]


@dataclass(frozen=True)
class ReplicaSnapshot:
    name: str
    service: str
    node: str
    handled: int
    errors: int
    max_queue: int
    expired: int  # messages dropped unhandled because their deadline had passed
    lost: int  # messages that reached it while it was down
    failures: int  # exceptions raised by its own code


class Replica:
    """A replica's inbox, processing time, health and counters."""

    def __init__(
        self, env: simpy.Environment, service: str, index: int, node: str, processing: Latency
    ) -> None:
        self.env = env
        self.service = service
        self.index = index
        self.name = f"{service}#{index}"
        self.node = node
        self.inbox: simpy.Store = simpy.Store(env)
        self.processing = processing
        self.handled = 0
        self.errors = 0
        self.max_queue = 0
        self.expired = 0
        self.lost = 0
        self.failures = 0
        self.in_flight = 0  # requests being handled (waiting on their own downstream calls)
        self._down = 0  # how many causes (crash faults, an update) hold it down
        self._hangs: list[simpy.Event] = []
        self._slowdowns: list[float] = []
        self._out_for_update = 0

    # -- health ------------------------------------------------------------------------
    @property
    def crashed(self) -> bool:
        return self._down > 0

    @property
    def sends_heartbeats(self) -> bool:
        return self._down == 0 and self._out_for_update == 0

    @property
    def slowdown(self) -> float:
        factor = 1.0
        for f in self._slowdowns:
            factor *= f
        return factor

    def hung_until(self) -> simpy.Event | None:
        """An event that succeeds when every hang has ended, or None when not hung."""
        return self._hangs[-1] if self._hangs else None

    def crash(self) -> Undo:
        """The process dies: what was queued is lost, and so is whatever reaches it until restarted."""
        self._down += 1
        self.lost += len(self.inbox.items)
        self.inbox.items.clear()
        return self._once(self._restart)

    def _restart(self) -> None:
        self._down -= 1

    def hang(self) -> Undo:
        """Takes messages and answers none until released."""
        released = self.env.event()
        self._hangs.append(released)

        def release() -> None:
            self._hangs.remove(released)
            released.succeed()

        return self._once(release)

    def slow_down(self, factor: float) -> Undo:
        self._slowdowns.append(factor)
        return self._once(lambda: self._slowdowns.remove(factor))

    def take_out(self) -> Undo:
        """Out of service for an update: no heartbeats while out."""
        self._out_for_update += 1

        def back() -> None:
            self._out_for_update -= 1

        return self._once(back)

    def stop(self) -> Undo:
        """The old version stops (an update): like a crash, but nothing was queued any more."""
        return self.crash()

    @staticmethod
    def _once(undo: Undo) -> Undo:
        done = False

        def run() -> None:
            nonlocal done
            if not done:
                done = True
                undo()

        return run

    # -- traffic -----------------------------------------------------------------------
    def deliver(self, message: Message) -> None:
        if self.crashed:
            self.lost += 1
            return
        self.inbox.put(message)
        queued = len(self.inbox.items)
        if queued > self.max_queue:
            self.max_queue = queued

    @property
    def idle(self) -> bool:
        return not self.in_flight and not self.inbox.items

    def snapshot(self) -> ReplicaSnapshot:
        return ReplicaSnapshot(
            self.name,
            self.service,
            self.node,
            self.handled,
            self.errors,
            self.max_queue,
            self.expired,
            self.lost,
            self.failures,
        )
