"""The registry as a running service: instances register, heartbeat across the network, and
callers resolve through their own cached view (see twin.patterns.discovery)."""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Any

import simpy

from sim_models.network import Network
from sim_models.rng import component_rng
from twin.patterns.discovery import (
    DiscoveryClient,
    InstanceRecord,
    Registry,
    RegistryConfig,
    RegistryUnavailable,
    Strategy,
)
from twin.scenario.models import DiscoveryConfig

_STRATEGIES = {
    "round_robin": Strategy.ROUND_ROBIN,
    "random": Strategy.RANDOM,
    "least_outstanding": Strategy.LEAST_OUTSTANDING,
}


class Discovery:
    """A registry on `config.node`, fed by heartbeats that cross the simulated links."""

    def __init__(self, env: simpy.Environment, network: Network, config: DiscoveryConfig, seed: int) -> None:
        self.env = env
        self.network = network
        self.config = config
        self.seed = seed
        self.registry = Registry(
            RegistryConfig(
                ttl_s=config.ttl_ms / 1000.0,
                deregister_critical_after_s=config.deregister_critical_after_ms / 1000.0,
            ),
            lambda: env.now,
            on_event=self._count,
        )
        self.clients: dict[str, DiscoveryClient] = {}
        self.events: dict[str, int] = {"registered": 0, "deregistered": 0, "expired": 0, "rejected": 0}
        self.heartbeats_lost = 0

    def _count(self, kind: str, instance: str) -> None:
        self.events[kind] = self.events.get(kind, 0) + 1

    def _lookup(self, service: str) -> list[InstanceRecord]:
        return self.registry.instances(service)

    def client(self, caller: str) -> DiscoveryClient:
        """The cached view of one caller replica (each has its own, refreshed on its own)."""
        client = self.clients.get(caller)
        if client is None:
            env = self.env
            client = DiscoveryClient(
                self._lookup,
                lambda: env.now,
                refresh_s=self.config.refresh_ms / 1000.0,
                strategy=_STRATEGIES[self.config.strategy],
                rng=component_rng(self.seed, f"discovery:{caller}"),
            )
            self.clients[caller] = client
        return client

    def start(self, instances: Iterable[Any]) -> None:
        for inst in instances:
            self.registry.register(inst.name, inst.service, inst.node)
            self.env.process(self._heartbeat(inst))

    def _heartbeat(self, inst: Any) -> Generator[simpy.Event, Any, None]:
        period = self.config.heartbeat_ms / 1000.0
        while True:
            yield self.env.timeout(period)
            if inst.crashed or getattr(inst, "stopped", False):
                continue  # a dead process sends nothing
            beat = (inst.name, inst.service, inst.node)
            if not self.network.deliver(inst.node, self.config.node, self._receive, beat):
                self.heartbeats_lost += 1

    def _receive(self, beat: tuple[str, str, str]) -> None:
        name, service, node = beat
        try:
            if not self.registry.heartbeat(name):
                self.registry.register(name, service, node)  # deregistered meanwhile: join again
        except RegistryUnavailable:
            self.heartbeats_lost += 1

    def stale_uses(self) -> int:
        return sum(c.stale_uses for c in self.clients.values())

    def refreshes(self) -> int:
        return sum(c.refreshes for c in self.clients.values())
