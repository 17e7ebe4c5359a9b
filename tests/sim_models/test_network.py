"""The simulated network: latency distributions, seeded generators, lossy links, delivery."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import simpy

from servo_core.errors import ConfigError
from sim_models.network import (
    ConstantLatency,
    EmpiricalLatency,
    Latency,
    Link,
    LinkSnapshot,
    LogNormalLatency,
    Network,
    NormalLatency,
    UniformLatency,
)
from sim_models.rng import component_rng

N = 20_000


def draws(latency: Latency, n: int = N) -> np.ndarray:
    return np.array([latency.sample() for _ in range(n)])


# -- latency distributions -----------------------------------------------------------


@pytest.mark.parametrize(("median_s", "sigma"), [(0.002, 0.5), (0.0005, 1.0)])
def test_lognormal_median_and_spread(median_s: float, sigma: float) -> None:
    x = draws(LogNormalLatency(component_rng(1, "lognormal"), median_s, sigma))
    assert np.all(x > 0)
    assert np.median(x) == pytest.approx(median_s, rel=0.05)
    assert np.std(np.log(x)) == pytest.approx(sigma, rel=0.05)
    # right-skewed: the mean is exp(sigma²/2) times the median
    assert np.mean(x) == pytest.approx(median_s * math.exp(sigma**2 / 2), rel=0.1)


def test_normal_is_truncated_at_zero() -> None:
    mean_s, std_s = 0.001, 0.002
    x = draws(NormalLatency(component_rng(1, "normal"), mean_s, std_s))
    assert x.min() == 0.0
    assert np.all(x >= 0.0)
    # P(N(1, 2) < 0) = Phi(-0.5) ≈ 0.3085: those draws are clipped to exactly zero
    assert np.mean(x == 0.0) == pytest.approx(0.3085, abs=0.015)
    positive = x[x > 0]
    assert np.median(positive) > mean_s


def test_normal_far_from_zero_keeps_its_moments() -> None:
    x = draws(NormalLatency(component_rng(1, "normal"), 0.010, 0.001))
    assert np.mean(x) == pytest.approx(0.010, rel=0.01)
    assert np.std(x) == pytest.approx(0.001, rel=0.05)


def test_uniform_stays_within_bounds() -> None:
    low, high = 0.001, 0.004
    x = draws(UniformLatency(component_rng(1, "uniform"), low, high))
    assert np.all((x >= low) & (x <= high))
    assert np.mean(x) == pytest.approx((low + high) / 2, rel=0.02)
    # covers the whole interval, evenly
    counts, _ = np.histogram(x, bins=10, range=(low, high))
    assert counts.min() > 0.8 * N / 10


def test_empirical_draws_only_given_samples() -> None:
    samples = [0.001, 0.0015, 0.004, 0.02]
    x = draws(EmpiricalLatency(component_rng(1, "empirical"), samples))
    counts = Counter(x.tolist())
    assert set(counts) == set(samples)
    for s in samples:
        assert counts[s] / N == pytest.approx(1 / len(samples), abs=0.02)


def test_empirical_needs_a_sample() -> None:
    with pytest.raises(ConfigError):
        EmpiricalLatency(component_rng(1, "empirical"), [])


def test_constant_is_constant() -> None:
    latency = ConstantLatency(component_rng(1, "constant"), 0.0025)
    assert set(draws(latency, 100).tolist()) == {0.0025}


# -- seeded generators ---------------------------------------------------------------


def test_component_rng_is_deterministic() -> None:
    a = component_rng(42, "link:gateway--planner").random(100)
    b = component_rng(42, "link:gateway--planner").random(100)
    assert np.array_equal(a, b)


def test_component_rng_depends_on_seed_and_name() -> None:
    base = component_rng(42, "planner").random(10)
    assert not np.array_equal(base, component_rng(43, "planner").random(10))
    assert not np.array_equal(base, component_rng(42, "planner2").random(10))
    assert not np.array_equal(base, component_rng(42, "Planner").random(10))


def test_component_rng_is_independent_of_other_names() -> None:
    alone = component_rng(7, "driver").random(50)
    others = [component_rng(7, name) for name in ("gateway", "planner", "safety")]
    for g in others:
        g.random(1000)  # draws elsewhere do not disturb this component
    interleaved = component_rng(7, "driver")
    got = []
    for i in range(50):
        others[i % 3].random()
        got.append(interleaved.random())
    assert np.array_equal(alone, np.array(got))


def test_component_rng_streams_are_uncorrelated() -> None:
    a = component_rng(3, "a").random(N)
    b = component_rng(3, "b").random(N)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.03


# -- links -----------------------------------------------------------------------


def test_link_loss_rate_and_counts() -> None:
    link = Link("a--b", ConstantLatency(component_rng(5, "lat"), 0.001), 0.3, component_rng(5, "loss"))
    results = [link.draw() for _ in range(N)]
    lost = sum(r is None for r in results)
    assert lost / N == pytest.approx(0.3, abs=0.03)
    snap = link.snapshot()
    assert (snap.name, snap.messages, snap.drops) == ("a--b", N, lost)
    assert len(snap.latencies_s) == N - lost
    assert all(r == 0.001 for r in results if r is not None)


@pytest.mark.parametrize("loss", [-0.1, 1.5, math.nan])
def test_link_loss_outside_0_1_is_rejected(loss: float) -> None:
    with pytest.raises(ConfigError, match="loss"):
        Link("a--b", ConstantLatency(component_rng(1, "x"), 0.0), loss, component_rng(1, "y"))


def test_lossless_and_total_loss_links() -> None:
    rng = component_rng(1, "x")
    never = Link("a--b", ConstantLatency(rng, 0.001), 0.0, component_rng(1, "l0"))
    always = Link("a--c", ConstantLatency(rng, 0.001), 1.0, component_rng(1, "l1"))
    assert all(never.draw() == 0.001 for _ in range(1000))
    assert all(always.draw() is None for _ in range(1000))
    assert never.snapshot().drops == 0
    assert always.snapshot().drops == always.snapshot().messages == 1000


def make_network(seed: int, extra_link_first: bool = False) -> tuple[Network, Link]:
    net = Network(simpy.Environment(), seed)

    def lognormal(name: str) -> LogNormalLatency:
        return LogNormalLatency(component_rng(seed, f"link:{name}"), 0.002, 0.6)

    if extra_link_first:
        net.add_link("planner", "telemetry", lognormal("planner--telemetry"), 0.2)
    link = net.add_link("gateway", "planner", lognormal("gateway--planner"), 0.1)
    return net, link


def test_same_seed_same_delays() -> None:
    _, a = make_network(11)
    _, b = make_network(11)
    assert [a.draw() for _ in range(2000)] == [b.draw() for _ in range(2000)]
    _, c = make_network(12)
    assert [a.draw() for _ in range(200)] != [c.draw() for _ in range(200)]


def test_adding_a_link_does_not_change_another_links_draws() -> None:
    _, alone = make_network(11)
    net, link = make_network(11, extra_link_first=True)
    extra = net.route("planner", "telemetry")
    assert extra is not None
    got = []
    for _ in range(2000):
        extra.draw()  # traffic on the other link, interleaved
        got.append(link.draw())
    assert got == [alone.draw() for _ in range(2000)]
    assert any(d is None for d in got) and any(d is not None for d in got)


def test_links_are_undirected_and_validated() -> None:
    net, link = make_network(1)
    assert net.route("planner", "gateway") is link
    assert net.route("gateway", "planner") is link
    assert net.route("gateway", "gateway") is None
    assert net.route("gateway", "nowhere") is None
    assert link.name == Network.link_name("planner", "gateway") == "gateway--planner"
    with pytest.raises(ConfigError, match="duplicate"):
        net.add_link("planner", "gateway", ConstantLatency(component_rng(1, "x"), 0.0))
    with pytest.raises(ConfigError):
        net.add_link("gateway", "gateway", ConstantLatency(component_rng(1, "x"), 0.0))


# -- delivery ----------------------------------------------------------------------


def test_delivery_arrives_at_the_drawn_time() -> None:
    env = simpy.Environment()
    net = Network(env, 3)
    link = net.add_link("a", "b", LogNormalLatency(component_rng(3, "link:a--b"), 0.002, 0.5))
    arrivals: list[tuple[float, int]] = []

    def sender(env: simpy.Environment):  # type: ignore[no-untyped-def]
        for i in range(20):
            assert net.deliver("a", "b", lambda m: arrivals.append((env.now, m)), i)
            yield env.timeout(0.001)

    env.process(sender(env))
    env.run()
    assert len(arrivals) == 20
    sent_at = {i: 0.001 * i for i in range(20)}
    by_message = {m: t for t, m in arrivals}
    delays = link.snapshot().latencies_s
    for i, delay in enumerate(delays):
        assert by_message[i] == pytest.approx(sent_at[i] + delay, abs=1e-12)
    # datagrams: arrival order follows the draws, not the send order
    assert [m for _, m in arrivals] == sorted(range(20), key=lambda i: sent_at[i] + delays[i])


def test_constant_delivery_time() -> None:
    env = simpy.Environment()
    net = Network(env, 0)
    net.add_link("a", "b", ConstantLatency(component_rng(0, "c"), 0.005))
    got: list[float] = []
    env.run(until=0.010)  # send at t = 10 ms
    assert net.deliver("b", "a", lambda m: got.append(env.now), "hello")
    assert got == []  # not before its time
    env.run()
    assert got == [pytest.approx(0.015)]


def test_same_node_delivery_is_immediate() -> None:
    env = simpy.Environment()
    net = Network(env, 0)  # no links at all
    got: list[tuple[float, str]] = []
    assert net.deliver("a", "a", lambda m: got.append((env.now, m)), "local")
    assert got == [(0.0, "local")]  # synchronously, before any event runs


def test_missing_link_is_a_config_error() -> None:
    net = Network(simpy.Environment(), 0)
    net.add_link("a", "b", ConstantLatency(component_rng(0, "c"), 0.001))
    with pytest.raises(ConfigError, match="'a'.*'c'|'c'.*'a'"):
        net.deliver("a", "c", lambda m: None, "lost")


def test_dropped_message_never_arrives() -> None:
    env = simpy.Environment()
    net = Network(env, 0)
    link = net.add_link("a", "b", ConstantLatency(component_rng(0, "c"), 0.001), loss=1.0)
    got: list[object] = []
    assert net.deliver("a", "b", got.append, "x") is False
    env.run()
    assert got == []
    assert link.snapshot().drops == 1


# -- faults and snapshots --------------------------------------------------------


def _link(loss: float = 0.0, delay_s: float = 0.001) -> Link:
    return Link("a--b", ConstantLatency(component_rng(0, "c"), delay_s), loss, component_rng(0, "l"))


def test_partition_loses_everything_until_undone_without_touching_the_loss_draws() -> None:
    link, twin_link = _link(loss=0.5), _link(loss=0.5)
    heal = link.partition()
    assert link.partitioned
    assert all(link.draw() is None for _ in range(100))
    heal()
    assert not link.partitioned
    # a partition draws nothing from the loss generator: afterwards the link goes on as if untouched
    assert [link.draw() for _ in range(200)] == [twin_link.draw() for _ in range(200)]
    assert link.snapshot().drops >= 100


def test_overlapping_partitions_heal_only_when_all_are_undone_and_undo_is_idempotent() -> None:
    link = _link()
    first, second = link.partition(), link.partition()
    first()
    first()  # a second call does nothing: it must not heal the other partition
    assert link.partitioned and link.draw() is None
    second()
    assert not link.partitioned and link.draw() == 0.001


def test_latency_faults_add_up_and_undo_in_any_order() -> None:
    link = _link(delay_s=0.001)
    undo_a = link.add_latency(0.01)
    undo_b = link.add_latency(0.1)
    assert link.extra_latency_s == pytest.approx(0.11)
    assert link.draw() == pytest.approx(0.111)
    undo_a()
    undo_a()
    assert link.draw() == pytest.approx(0.101)
    undo_b()
    assert link.extra_latency_s == 0.0  # exactly: no rounding residue after the faults are gone
    assert link.draw() == 0.001
    assert link.snapshot().latencies_s == pytest.approx((0.111, 0.101, 0.001))


@pytest.mark.parametrize("extra_s", [-0.001, math.inf, math.nan])
def test_bad_extra_latency_is_rejected(extra_s: float) -> None:
    with pytest.raises(ConfigError, match="latency"):
        _link().add_latency(extra_s)


def test_loss_faults_the_most_recent_in_force_applies() -> None:
    link = _link(loss=0.1)
    undo_total = link.set_loss(1.0)
    undo_none = link.set_loss(0.0)
    assert (link.loss, link.effective_loss) == (0.1, 0.0)
    assert all(link.draw() is not None for _ in range(200))
    undo_none()  # back to the one set before it
    assert link.effective_loss == 1.0
    assert all(link.draw() is None for _ in range(200))
    undo_none()  # idempotent
    assert link.effective_loss == 1.0
    undo_total()
    assert link.effective_loss == 0.1  # the link's own


def test_undoing_an_older_loss_fault_keeps_the_newer_one() -> None:
    link = _link(loss=0.2)
    undo_old = link.set_loss(0.5)
    undo_new = link.set_loss(0.5)  # equal values: each undo removes its own
    undo_old()
    assert link.effective_loss == 0.5
    undo_new()
    assert link.effective_loss == 0.2
    with pytest.raises(ConfigError, match="loss"):
        link.set_loss(1.5)


def test_fault_state_cannot_be_set_directly() -> None:
    link = _link()
    with pytest.raises(AttributeError):
        link.partitioned = True  # type: ignore[misc]
    with pytest.raises(AttributeError):
        link.fault_loss = 0.5  # type: ignore[attr-defined]


def test_snapshot_is_a_frozen_copy() -> None:
    link = _link()
    link.draw()
    snap = link.snapshot()
    link.draw()
    assert (snap.messages, snap.latencies_s) == (1, (0.001,))
    assert link.snapshot().messages == 2
    with pytest.raises(AttributeError):
        snap.messages = 5  # type: ignore[misc]


def test_network_snapshot_has_every_link_by_name() -> None:
    env = simpy.Environment()
    net = Network(env, 0)
    net.add_link("z", "y", ConstantLatency(component_rng(0, "c"), 0.001))
    net.add_link("a", "b", ConstantLatency(component_rng(0, "c"), 0.002), loss=1.0)
    net.deliver("a", "b", lambda m: None, 1)
    net.deliver("y", "z", lambda m: None, 1)
    snaps = net.snapshot()
    assert list(snaps) == ["a--b", "y--z"]
    assert snaps["a--b"] == LinkSnapshot("a--b", 1, 1, ())
    assert snaps["y--z"] == LinkSnapshot("y--z", 1, 0, (0.001,))
