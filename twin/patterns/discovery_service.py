"""The registry as a running service: instances register, heartbeat across the network, and
callers resolve through their own cached view (see twin.patterns.discovery).

Settings are plain SI values (`DiscoverySettings`, seconds); the instances that
heartbeat are anything that satisfies `HeartbeatSource`. An optional
`on_heartbeat(instance, node, registry_node, sent_s, arrived_s, outcome)` hook
hears of every heartbeat sent, with outcome

- "ok": it reached the registry, which renewed the instance (or registered it
  again, when it had been removed meanwhile);
- "lost": the network lost it (reported when sent; `arrived_s` is None);
- "refused": it reached the registry during an outage.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import simpy

from servo_core.errors import ConfigError
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

__all__ = ["Discovery", "DiscoverySettings", "DiscoverySnapshot", "HeartbeatHook", "HeartbeatSource"]


@dataclass(frozen=True)
class DiscoverySettings:
    """Where the registry runs and how it and its clients are timed (seconds)."""

    node: str  # where the registry runs
    ttl_s: float = 1.0  # a heartbeat must come within this or the instance turns CRITICAL
    heartbeat_s: float = 0.25  # each instance's heartbeat period
    deregister_critical_after_s: float = 2.0  # a CRITICAL instance is removed this long after it turned
    refresh_s: float = 0.5  # how often a client refreshes its cached view
    strategy: Strategy = Strategy.ROUND_ROBIN

    def __post_init__(self) -> None:
        for name in ("heartbeat_s", "refresh_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"discovery {name} must be a positive number of seconds, got {value!r}")
        if not isinstance(self.strategy, Strategy):
            raise ConfigError(f"discovery strategy must be a Strategy, got {self.strategy!r}")
        _ = self.registry_config  # checks ttl_s and deregister_critical_after_s

    @property
    def registry_config(self) -> RegistryConfig:
        return RegistryConfig(ttl_s=self.ttl_s, deregister_critical_after_s=self.deregister_critical_after_s)


class HeartbeatSource(Protocol):
    """A replica that registers and heartbeats."""

    name: str  # the instance name, unique
    service: str
    node: str

    @property
    def sends_heartbeats(self) -> bool:
        """False while the replica cannot send (crashed, or stopped for an update)."""
        ...


HeartbeatHook = Callable[[str, str, str, float, "float | None", str], None]


@dataclass(frozen=True)
class DiscoverySnapshot:
    refreshes: int  # successful lookups by the clients
    stale_uses: int  # resolutions routed on a view whose refresh failed (registry down)
    registered: int  # registrations, re-registrations included
    expired: int  # instances removed for staying CRITICAL too long
    deregistered: int  # instances removed on request
    heartbeats_lost: int  # heartbeats that renewed nothing: lost in the network or refused
    calls_per_replica: dict[str, int]  # calls routed to each instance through the clients (sorted)
    heartbeats_sent: int = 0
    heartbeats_refused: int = 0  # of heartbeats_lost, those refused during an outage
    rejected: int = 0  # heartbeats from instances the registry no longer held (they re-register)


class Discovery:
    """A registry on `settings.node`, fed by heartbeats that cross the simulated links."""

    def __init__(
        self,
        env: simpy.Environment,
        network: Network,
        settings: DiscoverySettings,
        seed: int,
        on_heartbeat: HeartbeatHook | None = None,
    ) -> None:
        self.env = env
        self.network = network
        self.settings = settings
        self.seed = seed
        self.on_heartbeat = on_heartbeat
        self.registry = Registry(settings.registry_config, lambda: env.now, on_event=self._count)
        self.clients: dict[str, DiscoveryClient] = {}
        self._events = {"registered": 0, "deregistered": 0, "expired": 0, "rejected": 0}
        self._sent = self._lost = self._refused = 0

    def _count(self, kind: str, instance: str) -> None:
        self._events[kind] = self._events.get(kind, 0) + 1

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
                refresh_s=self.settings.refresh_s,
                strategy=self.settings.strategy,
                rng=component_rng(self.seed, f"discovery:{caller}"),
            )
            self.clients[caller] = client
        return client

    def start(self, instances: Iterable[HeartbeatSource]) -> None:
        """Register each instance now and heartbeat for it from now on."""
        for inst in instances:
            self.registry.register(inst.name, inst.service, inst.node)
            self.env.process(self._heartbeat(inst))

    def outage(self) -> Callable[[], None]:
        """The registry refuses every call until the returned undo is called (see Registry.outage)."""
        return self.registry.outage()

    def snapshot(self) -> DiscoverySnapshot:
        clients = self.clients.values()
        calls: dict[str, int] = {}
        for client in clients:
            for name, n in client.calls.items():
                calls[name] = calls.get(name, 0) + n
        events = self._events
        return DiscoverySnapshot(
            refreshes=sum(c.refreshes for c in clients),
            stale_uses=sum(c.stale_uses for c in clients),
            registered=events["registered"],
            expired=events["expired"],
            deregistered=events["deregistered"],
            heartbeats_lost=self._lost + self._refused,
            calls_per_replica=dict(sorted(calls.items())),
            heartbeats_sent=self._sent,
            heartbeats_refused=self._refused,
            rejected=events["rejected"],
        )

    def _heartbeat(self, inst: HeartbeatSource) -> Generator[simpy.Event, Any, None]:
        period = self.settings.heartbeat_s
        registry_node = self.settings.node
        while True:
            yield self.env.timeout(period)
            if not inst.sends_heartbeats:
                continue  # a dead process sends nothing
            self._sent += 1
            beat = (inst, self.env.now)
            if not self.network.deliver(inst.node, registry_node, self._receive, beat):
                self._lost += 1
                if self.on_heartbeat is not None:
                    self.on_heartbeat(inst.name, inst.node, registry_node, self.env.now, None, "lost")

    def _receive(self, beat: tuple[HeartbeatSource, float]) -> None:
        inst, sent_s = beat
        try:
            if not self.registry.heartbeat(inst.name):
                self.registry.register(inst.name, inst.service, inst.node)  # removed meanwhile: join again
        except RegistryUnavailable:
            self._refused += 1
            outcome = "refused"
        else:
            outcome = "ok"
        if self.on_heartbeat is not None:
            self.on_heartbeat(inst.name, inst.node, self.settings.node, sent_s, self.env.now, outcome)
