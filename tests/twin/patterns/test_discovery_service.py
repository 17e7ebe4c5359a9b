"""The discovery runtime: heartbeats over the network, the hook, outages, snapshots; and the
patterns package's independence from the rest of the twin."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest
import simpy

from servo_core.errors import ConfigError
from sim_models.network import ConstantLatency, Network
from sim_models.rng import component_rng
from twin.patterns.discovery import Health, RegistryConfig, Strategy
from twin.patterns.discovery_service import (
    Discovery,
    DiscoverySettings,
    DiscoverySnapshot,
    HeartbeatSource,
)

Beat = tuple[float, str, str, str, float, float | None, str]


@dataclass
class Replica:
    name: str
    service: str
    node: str
    crashed: bool = False

    @property
    def sends_heartbeats(self) -> bool:
        return not self.crashed


def _world(
    loss: float = 0.0, settings: DiscoverySettings | None = None
) -> tuple[simpy.Environment, Network, Discovery, list[Beat]]:
    """A registry on "hub"; replicas on "robot", 10 ms away."""
    env = simpy.Environment()
    network = Network(env, 3)
    network.add_link("robot", "hub", ConstantLatency(component_rng(3, "lat"), 0.01), loss)
    beats: list[Beat] = []

    def hook(
        instance: str, node: str, registry_node: str, sent_s: float, arrived_s: float | None, outcome: str
    ):  # type: ignore[no-untyped-def]
        beats.append((env.now, instance, node, registry_node, sent_s, arrived_s, outcome))

    discovery = Discovery(
        env, network, settings or DiscoverySettings(node="hub", heartbeat_s=0.25), seed=3, on_heartbeat=hook
    )
    return env, network, discovery, beats


def test_settings_are_checked_and_give_the_registry_config() -> None:
    settings = DiscoverySettings(node="hub", ttl_s=2.0, deregister_critical_after_s=3.0)
    assert settings.registry_config == RegistryConfig(ttl_s=2.0, deregister_critical_after_s=3.0)
    assert settings.strategy is Strategy.ROUND_ROBIN
    for bad in ({"heartbeat_s": 0.0}, {"refresh_s": -1.0}, {"strategy": "round_robin"}):
        with pytest.raises(ConfigError):
            DiscoverySettings(node="hub", **bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        DiscoverySettings(node="hub", ttl_s=0.0)  # checked by RegistryConfig


def test_heartbeats_cross_the_network_and_the_hook_hears_each() -> None:
    env, _network, discovery, beats = _world()
    replica: HeartbeatSource = Replica("planner#0", "planner", "robot")
    discovery.start([replica])
    env.run(until=0.6)
    assert beats == [
        (pytest.approx(0.26), "planner#0", "robot", "hub", 0.25, pytest.approx(0.26), "ok"),
        (pytest.approx(0.51), "planner#0", "robot", "hub", 0.5, pytest.approx(0.51), "ok"),
    ]
    assert discovery.registry.health("planner#0") is Health.PASSING
    snap = discovery.snapshot()
    assert (snap.registered, snap.heartbeats_sent, snap.heartbeats_lost) == (1, 2, 0)


def test_lost_heartbeats_are_counted_and_reported_when_sent() -> None:
    env, _network, discovery, beats = _world(loss=0.3)
    discovery.start([Replica(f"planner#{k}", "planner", "robot") for k in range(3)])
    env.run(until=20.0)
    lost = [b for b in beats if b[-1] == "lost"]
    assert lost and all(b[5] is None and b[0] == b[4] for b in lost)  # at the send, never arrived
    snap = discovery.snapshot()
    assert snap.heartbeats_lost == len(lost) == snap.heartbeats_sent - sum(b[-1] == "ok" for b in beats)
    assert snap.heartbeats_sent == 3 * 79  # every 0.25 s from 0.25 to 19.75
    assert snap.heartbeats_refused == 0


def test_an_outage_refuses_heartbeats_and_overlapping_outages_compose() -> None:
    env, _network, discovery, beats = _world()
    discovery.start([Replica("planner#0", "planner", "robot")])
    env.run(until=0.3)
    first = discovery.outage()
    second = discovery.registry.outage()
    env.run(until=0.8)
    first()
    env.run(until=1.3)
    assert not discovery.registry.available
    second()
    env.run(until=1.6)
    assert [(round(b[4], 2), b[-1]) for b in beats] == [
        (0.25, "ok"),
        (0.5, "refused"),
        (0.75, "refused"),
        (1.0, "refused"),
        (1.25, "refused"),
        (1.5, "ok"),
    ]
    snap = discovery.snapshot()
    assert (snap.heartbeats_refused, snap.heartbeats_lost) == (4, 4)


def test_a_replica_that_sends_no_heartbeats_expires_and_rejoins_when_it_sends_again() -> None:
    settings = DiscoverySettings(node="hub", ttl_s=1.0, heartbeat_s=0.25, deregister_critical_after_s=1.0)
    env, _network, discovery, beats = _world(settings=settings)
    replica = Replica("planner#0", "planner", "robot")
    discovery.start([replica])
    env.run(until=0.3)
    replica.crashed = True
    env.run(until=3.0)
    assert discovery.registry.instances("planner") == []  # swept out: expired
    replica.crashed = False
    env.run(until=3.3)
    assert [r.instance for r in discovery.registry.instances("planner")] == ["planner#0"]
    snap = discovery.snapshot()
    assert (snap.registered, snap.expired, snap.rejected) == (2, 1, 1)
    # nothing sent while crashed; the beat that rejoins is "ok"
    assert [(b[4], b[-1]) for b in beats] == [(0.25, "ok"), (3.0, "ok"), (3.25, "ok")]


def test_snapshot_counts_calls_per_replica_over_every_client() -> None:
    settings = DiscoverySettings(node="hub", strategy=Strategy.LEAST_OUTSTANDING)
    env, _network, discovery, _beats = _world(settings=settings)
    discovery.start([Replica(f"planner#{k}", "planner", "robot") for k in range(3)])
    env.run(until=0.1)
    for caller in ("gateway#0", "gateway#1"):
        client = discovery.client(caller)
        assert discovery.client(caller) is client
        for _ in range(30):
            name = client.resolve("planner")
            client.started(name)
            client.finished(name)
    snap = discovery.snapshot()
    assert isinstance(snap, DiscoverySnapshot)
    assert snap.calls_per_replica == {"planner#0": 20, "planner#1": 20, "planner#2": 20}
    assert (snap.refreshes, snap.stale_uses) == (2, 0)
    assert (snap.deregistered, snap.expired) == (0, 0)


PATTERNS = Path(__file__).resolve().parents[3] / "twin" / "patterns"


@pytest.mark.parametrize("path", sorted(PATTERNS.glob("*.py")), ids=lambda p: p.name)
def test_patterns_do_not_import_the_services_runtime_or_scenario(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = [
        name
        for node in ast.walk(tree)
        for name in (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
    ]
    forbidden = ("twin.services", "twin.runtime", "twin.scenario", "twin.observe", "twin.api", "twin.faults")
    assert not [m for m in imported if m.startswith(forbidden)]
