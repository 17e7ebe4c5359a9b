"""Service discovery: TTL health, lazy deregistration, outages, and clients routing on a cached view.

Times are chosen to be exact in binary (multiples of 1/32 s, or k/10 reached
by exact steps) so that boundary assertions mean exactly what they say.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from servo_core.errors import ConfigError, TwinError
from twin.patterns.discovery import (
    DiscoveryClient,
    Health,
    InstanceRecord,
    NoInstance,
    Registry,
    RegistryConfig,
    RegistryUnavailable,
    Strategy,
    UnknownInstance,
)

TINY = 1 / 1024  # exact in binary


@dataclass
class Replica:
    name: str
    service: str
    node: str


class Clock:
    """A fake clock: set `t`, call it for the time."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _registry(
    clock: Clock, ttl_s: float = 1.0, warning_after_s: float | None = None, dereg_s: float = 5.0
) -> tuple[Registry, list[tuple[float, str, str]]]:
    events: list[tuple[float, str, str]] = []
    config = RegistryConfig(ttl_s=ttl_s, warning_after_s=warning_after_s, deregister_critical_after_s=dereg_s)
    registry = Registry(config, clock, lambda kind, name: events.append((clock.t, kind, name)))
    return registry, events


def _names(records: list[InstanceRecord]) -> list[str]:
    return [r.instance for r in records]


# -- registry ----------------------------------------------------------------------------------------


def test_health_turns_warning_then_critical_at_the_exact_ages() -> None:
    clock = Clock(10.0)
    registry, _ = _registry(clock, ttl_s=1.0)  # warning after ttl / 2 by default
    registry.register("planner#0", "planner", "robot")
    expected = [
        (10.0, Health.PASSING),
        (10.5, Health.PASSING),  # age == warning_after: still passing
        (10.5 + TINY, Health.WARNING),
        (11.0, Health.WARNING),  # age == ttl: still warning
        (11.0 + TINY, Health.CRITICAL),
        (12.0, Health.CRITICAL),
    ]
    for t, health in expected:
        clock.t = t
        assert registry.health("planner#0") is health, t


def test_an_explicit_warning_threshold_is_used() -> None:
    clock = Clock()
    registry, _ = _registry(clock, ttl_s=2.0, warning_after_s=1.5)
    registry.register("a#0", "a", "n")
    clock.t = 1.5
    assert registry.health("a#0") is Health.PASSING
    clock.t = 1.5 + TINY
    assert registry.health("a#0") is Health.WARNING


def test_heartbeats_keep_an_instance_passing() -> None:
    clock = Clock()
    registry, _ = _registry(clock, ttl_s=1.0)
    registry.register("a#0", "a", "n")
    for k in range(1, 41):  # a heartbeat every 0.25 s for 10 s
        clock.t = k * 0.25
        assert registry.health("a#0") is Health.PASSING
        assert registry.heartbeat("a#0") is True
    (record,) = registry.instances("a")
    assert (record.registered_at, record.last_heartbeat, record.health) == (0.0, 10.0, Health.PASSING)


def test_a_critical_instance_is_removed_exactly_dereg_after_it_turned_critical() -> None:
    clock = Clock()
    registry, events = _registry(clock, ttl_s=1.0, dereg_s=5.0)
    registry.register("a#0", "a", "n")
    clock.t = 0.5
    registry.heartbeat("a#0")  # turns critical just after 1.5, is removed at 1.5 + 5
    clock.t = 6.5 - TINY
    assert registry.health("a#0") is Health.CRITICAL
    assert _names(registry.instances("a", passing_only=False)) == ["a#0"]
    clock.t = 6.5
    assert registry.instances("a", passing_only=False) == []
    assert registry.snapshot() == {}
    assert events == [(0.0, "registered", "a#0"), (6.5, "expired", "a#0")]
    with pytest.raises(UnknownInstance):
        registry.health("a#0")


def test_expiry_does_not_depend_on_who_looks_first() -> None:
    """Whichever call comes first after the deadline sees the instance gone: here, its own heartbeat."""
    clock = Clock()
    registry, events = _registry(clock, ttl_s=1.0, dereg_s=2.0)
    registry.register("a#0", "a", "n")
    clock.t = 3.0 - TINY
    assert registry.heartbeat("a#0") is True  # critical, not yet removed: a heartbeat revives it
    assert registry.health("a#0") is Health.PASSING
    clock.t = 6.0
    assert registry.heartbeat("a#0") is False
    assert [e[1] for e in events] == ["registered", "expired", "rejected"]


def test_zero_dereg_removes_as_soon_as_critical() -> None:
    clock = Clock()
    registry, _ = _registry(clock, ttl_s=1.0, dereg_s=0.0)
    registry.register("a#0", "a", "n")
    clock.t = 1.0
    assert registry.health("a#0") is Health.WARNING
    clock.t = 1.0 + TINY
    assert registry.instances("a", passing_only=False) == []


def test_a_deregistered_instance_must_register_again() -> None:
    clock = Clock()
    registry, events = _registry(clock)
    registry.register("a#0", "a", "n1")
    registry.deregister("a#0")
    registry.deregister("a#0")  # a no-op
    assert registry.heartbeat("a#0") is False
    assert registry.instances("a") == []
    clock.t = 2.0
    registry.register("a#0", "a", "n2")
    assert registry.heartbeat("a#0") is True
    (record,) = registry.instances("a")
    assert record == InstanceRecord("a#0", "a", "n2", 2.0, 2.0, Health.PASSING)
    assert [e[1] for e in events] == ["registered", "deregistered", "rejected", "registered"]


def test_instances_are_sorted_and_exclude_critical_but_not_warning() -> None:
    clock = Clock()
    registry, _ = _registry(clock, ttl_s=1.0)
    for name in ["p#2", "p#0", "p#1"]:
        registry.register(name, "p", "robot")
    registry.register("q#0", "q", "ops")
    clock.t = 0.75
    registry.heartbeat("p#2")
    registry.heartbeat("q#0")
    clock.t = 1.25
    registry.heartbeat("p#1")
    clock.t = 1.5
    assert [(r.instance, r.health) for r in registry.instances("p")] == [
        ("p#1", Health.PASSING),
        ("p#2", Health.WARNING),
    ]
    assert _names(registry.instances("p", passing_only=False)) == ["p#0", "p#1", "p#2"]
    snapshot = registry.snapshot()
    assert list(snapshot) == ["p", "q"]
    assert _names(snapshot["p"]) == ["p#0", "p#1", "p#2"]
    assert snapshot["p"][0].health is Health.CRITICAL
    assert registry.instances("nobody") == []


def test_an_outage_refuses_every_call_and_changes_nothing() -> None:
    clock = Clock()
    registry, _ = _registry(clock)
    registry.register("a#0", "a", "n")
    recover = registry.outage()
    assert not registry.available
    for call in (
        lambda: registry.instances("a"),
        lambda: registry.heartbeat("a#0"),
        lambda: registry.register("b#0", "b", "n"),
        lambda: registry.deregister("a#0"),
        lambda: registry.health("a#0"),
        registry.snapshot,
    ):
        with pytest.raises(RegistryUnavailable):
            call()
    assert issubclass(RegistryUnavailable, TwinError)
    recover()
    assert registry.available
    assert _names(registry.instances("a")) == ["a#0"]
    assert registry.instances("b") == []


def test_bad_configs_are_refused() -> None:
    for kwargs in ({"ttl_s": 0.0}, {"warning_after_s": 2.0}, {"deregister_critical_after_s": -1.0}):
        with pytest.raises(ConfigError):
            RegistryConfig(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        DiscoveryClient(lambda s: [], Clock(), strategy=Strategy.RANDOM)


# -- client ------------------------------------------------------------------------------------------


def _live(registry: Registry, names: list[str], service: str = "p") -> None:
    for name in names:
        registry.register(name, service, "robot")


def test_the_cache_is_refreshed_every_refresh_s_and_routes_on_a_stale_view_between() -> None:
    clock = Clock()
    registry, _ = _registry(clock, ttl_s=1.0)
    _live(registry, ["p#0", "p#1"])
    # with a call kept outstanding on p#1, least-outstanding sends everything to p#0 while in view
    client = DiscoveryClient(registry.instances, clock, refresh_s=0.5, strategy=Strategy.LEAST_OUTSTANDING)
    client.started("p#1")
    log = []
    for k in range(0, 33):  # every 1/16 s for 2 s; p#1 heartbeats, p#0 does not after t = 0
        clock.t = k / 16
        registry.heartbeat("p#1")
        log.append((clock.t, client.resolve("p")))
    assert client.refreshes == 5  # at 0, 0.5, 1.0, 1.5, 2.0
    # p#0 is critical from just after 1.0; the refresh at 1.0 still sees it WARNING, the one at 1.5 drops it
    assert [t for t, name in log if name == "p#0"] == [k / 16 for k in range(24)]
    assert registry.health("p#0") is Health.CRITICAL
    assert client.resolutions == 33


@settings(max_examples=60, deadline=None)
@given(death_tick=st.integers(min_value=0, max_value=160), offset_tick=st.integers(min_value=0, max_value=15))
def test_failover_happens_by_death_plus_ttl_plus_refresh(death_tick: int, offset_tick: int) -> None:
    """Worst case: an instance dies (last heartbeat) at t, turns critical just after t + ttl, and the
    client drops it at its first refresh strictly after that, which is at most refresh_s later. The
    bound is reached when t + ttl falls on a refresh. Ticks are 1/32 s; refreshes every 16 ticks."""
    tick, ttl_ticks, refresh_ticks = 1 / 32, 32, 16
    clock = Clock()
    registry, _ = _registry(clock, ttl_s=ttl_ticks * tick, dereg_s=100.0)
    _live(registry, ["a#0", "b#0"])
    client = DiscoveryClient(
        registry.instances, clock, refresh_s=refresh_ticks * tick, strategy=Strategy.LEAST_OUTSTANDING
    )
    client.started("b#0")  # kept outstanding: a#0, the least busy, gets every call while in view
    failover_tick = None
    for k in range(death_tick + ttl_ticks + 3 * refresh_ticks):
        clock.t = k * tick
        registry.heartbeat("b#0")
        if k <= death_tick:
            registry.heartbeat("a#0")
        if k >= offset_tick and client.resolve("p") != "a#0":  # the client starts (and refreshes) at offset
            failover_tick = k
            break
    assert failover_tick is not None
    # refreshes at offset + multiples of refresh; the first one strictly after death + ttl drops a#0
    critical_from = death_tick + ttl_ticks
    expected = offset_tick + ((critical_from - offset_tick) // refresh_ticks + 1) * refresh_ticks
    assert failover_tick == expected
    assert failover_tick - death_tick <= ttl_ticks + refresh_ticks
    if (critical_from - offset_tick) % refresh_ticks == 0:
        assert failover_tick - death_tick == ttl_ticks + refresh_ticks  # the worst case is reached


def test_round_robin_cycles_in_name_order_and_stays_fair_when_membership_changes() -> None:
    clock = Clock()
    registry, _ = _registry(clock)
    _live(registry, ["p#2", "p#0", "p#1"])
    client = DiscoveryClient(registry.instances, clock, refresh_s=1.0)
    assert [client.resolve("p") for _ in range(7)] == ["p#0", "p#1", "p#2", "p#0", "p#1", "p#2", "p#0"]
    registry.deregister("p#1")
    client.invalidate("p")
    assert [client.resolve("p") for _ in range(3)] == ["p#2", "p#0", "p#2"]  # after p#0 comes p#2
    _live(registry, ["p#1"])
    client.invalidate()
    assert [client.resolve("p") for _ in range(3)] == ["p#0", "p#1", "p#2"]


def test_round_robin_is_per_service() -> None:
    clock = Clock()
    registry, _ = _registry(clock)
    _live(registry, ["p#0", "p#1"], "p")
    _live(registry, ["q#0", "q#1"], "q")
    client = DiscoveryClient(registry.instances, clock)
    assert [client.resolve(s) for s in "ppqpq"] == ["p#0", "p#1", "q#0", "p#0", "q#1"]


def test_least_outstanding_picks_the_least_busy_and_rotates_among_ties() -> None:
    clock = Clock()
    registry, _ = _registry(clock)
    _live(registry, ["p#0", "p#1", "p#2"])
    client = DiscoveryClient(registry.instances, clock, strategy=Strategy.LEAST_OUTSTANDING)
    picks = []
    for _ in range(5):  # nothing finishes: spreads over the replicas in name order
        name = client.resolve("p")
        client.started(name)
        picks.append(name)
    assert picks == ["p#0", "p#1", "p#2", "p#0", "p#1"]
    assert [client.outstanding(n) for n in ["p#0", "p#1", "p#2"]] == [2, 2, 1]
    assert client.resolve("p") == "p#2"
    client.finished("p#0")
    client.finished("p#0")
    assert client.resolve("p") == "p#0"
    with pytest.raises(TwinError):
        client.finished("p#0")


def test_least_outstanding_spreads_sequential_calls_evenly() -> None:
    """Each call finishes before the next: every pick is a three-way tie, which must rotate."""
    clock = Clock()
    registry, _ = _registry(clock)
    _live(registry, ["p#0", "p#1", "p#2"])
    client = DiscoveryClient(registry.instances, clock, strategy=Strategy.LEAST_OUTSTANDING)
    n = 100
    for _ in range(n):
        name = client.resolve("p")
        client.started(name)
        client.finished(name)
    assert sum(client.calls.values()) == n
    for name in ("p#0", "p#1", "p#2"):
        assert abs(client.calls[name] - n / 3) <= 1


def test_least_outstanding_rotates_only_among_the_least_busy() -> None:
    clock = Clock()
    registry, _ = _registry(clock)
    _live(registry, ["p#0", "p#1", "p#2"])
    client = DiscoveryClient(registry.instances, clock, strategy=Strategy.LEAST_OUTSTANDING)
    client.started("p#1")  # a long call keeps p#1 busy
    picks = []
    for _ in range(4):
        name = client.resolve("p")
        client.started(name)
        client.finished(name)
        picks.append(name)
    assert picks == ["p#0", "p#2", "p#0", "p#2"]
    assert client.calls == {"p#1": 1, "p#0": 2, "p#2": 2}


def test_calls_count_what_was_started_not_what_was_resolved() -> None:
    clock = Clock()
    registry, _ = _registry(clock)
    _live(registry, ["p#0", "p#1"])
    client = DiscoveryClient(registry.instances, clock)
    client.resolve("p")  # resolved, then passed over (an open breaker, say): no call
    client.started(client.resolve("p"))
    assert client.calls == {"p#1": 1}
    assert client.resolutions == 2


def test_overlapping_outages_end_when_every_one_is_undone() -> None:
    clock = Clock()
    registry, _ = _registry(clock)
    first, second = registry.outage(), registry.outage()
    first()
    first()  # idempotent: does not end the other outage
    assert not registry.available
    with pytest.raises(RegistryUnavailable):
        registry.instances("p")
    second()
    assert registry.available and registry.instances("p") == []
    with pytest.raises(AttributeError):
        registry.available = False  # type: ignore[misc]


def test_random_is_reproducible_with_a_seed_and_covers_the_view() -> None:
    clock = Clock()
    registry, _ = _registry(clock)
    _live(registry, ["p#0", "p#1", "p#2"])

    def draws(seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        client = DiscoveryClient(registry.instances, clock, strategy=Strategy.RANDOM, rng=rng)
        return [client.resolve("p") for _ in range(60)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    assert set(draws(7)) == {"p#0", "p#1", "p#2"}


def test_a_stale_view_is_used_during_a_registry_outage_and_counted() -> None:
    clock = Clock()
    registry, _ = _registry(clock, ttl_s=10.0)
    _live(registry, ["p#0", "p#1"])
    client = DiscoveryClient(registry.instances, clock, refresh_s=1.0)
    assert client.resolve("p") == "p#0"
    recover = registry.outage()
    clock.t = 0.5
    assert client.resolve("p") == "p#1"  # cache still fresh: no lookup, not stale
    assert (client.refreshes, client.stale_uses) == (1, 0)
    clock.t = 1.0
    assert [client.resolve("p") for _ in range(3)] == ["p#0", "p#1", "p#0"]  # each retries the lookup
    client.invalidate()
    assert client.resolve("p") == "p#1"  # invalidating keeps the view as the fallback
    assert (client.refreshes, client.stale_uses, client.resolutions) == (1, 4, 6)
    with pytest.raises(NoInstance) as caught:
        client.resolve("q")  # no view at all
    assert isinstance(caught.value.__cause__, RegistryUnavailable)
    recover()
    registry.deregister("p#0")
    assert client.resolve("p") == "p#1"
    assert (client.refreshes, client.stale_uses) == (2, 4)


def test_no_instance_when_the_view_is_empty() -> None:
    clock = Clock()
    registry, _ = _registry(clock)
    client = DiscoveryClient(registry.instances, clock, refresh_s=1.0)
    with pytest.raises(NoInstance):
        client.resolve("p")
    _live(registry, ["p#0"])
    with pytest.raises(NoInstance):  # the empty answer is cached until the next refresh
        client.resolve("p")
    clock.t = 1.0
    assert client.resolve("p") == "p#0"
    assert issubclass(NoInstance, TwinError)


# -- in a simulation ---------------------------------------------------------------------------------


def test_in_simpy_traffic_leaves_a_dead_replica_at_death_plus_ttl_plus_refresh() -> None:
    """Three planner replicas heartbeat every 0.25 s; planner#1 stops after its beat at t = 2. A client
    resolves every 0.1 s with a 0.5 s cache. planner#1 is WARNING (routable) at the refresh at 3.0 and
    CRITICAL at the one at 3.5: its last call is at 3.4 and none goes to it from 3.5 on."""
    env = simpy.Environment()
    registry = Registry(RegistryConfig(ttl_s=1.0), lambda: env.now)
    client = DiscoveryClient(registry.instances, lambda: env.now, refresh_s=0.5)
    replicas = [Replica(f"planner#{k}", "planner", "robot") for k in range(3)]
    log: list[tuple[int, str]] = []  # (tick of 0.1 s, instance)

    def heartbeat(inst: Replica, until: float | None) -> Generator[simpy.Event, None, None]:
        registry.register(inst.name, inst.service, inst.node)
        while until is None or env.now < until:
            yield env.timeout(0.25)
            if not registry.heartbeat(inst.name):
                registry.register(inst.name, inst.service, inst.node)

    def caller() -> Generator[simpy.Event, None, None]:
        for k in range(51):
            yield env.timeout(k / 10 - env.now)  # lands on k / 10 exactly, with no drift
            log.append((k, client.resolve("planner")))

    for inst in replicas:
        env.process(heartbeat(inst, 2.0 if inst.name == "planner#1" else None))
    env.process(caller())
    env.run(until=5.01)

    dead_ticks = [k for k, name in log if name == "planner#1"]
    assert max(dead_ticks) == 34  # t = 3.4: routed on the view fetched at 3.0, when it was WARNING
    assert all(name != "planner#1" for k, name in log if k >= 35)  # from t = 3.5, 2 + ttl + refresh
    assert {name for k, name in log if k >= 35} == {"planner#0", "planner#2"}
    assert registry.health("planner#1") is Health.CRITICAL
    assert client.refreshes == 11  # 0, 0.5, ..., 5.0
    assert len(log) == 51 == client.resolutions
