"""The event bus: gap deadlines under steady loss, snapshots that account for every copy, the observer."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import simpy

from sim_models.network import ConstantLatency, Network
from sim_models.rng import component_rng
from twin.patterns.eventbus import Event, EventBus, Overflow, QoS, SubscriberConfig, Subscription, TopicConfig

Observation = tuple[float, str, str, str, float, float | None, str]  # (now, topic, ..., outcome)


def _net(env: simpy.Environment, seed: int = 1, **links: tuple[float, float]) -> Network:
    """Links "<node>" -> "sub" with (latency_s, loss) each."""
    network = Network(env, seed)
    for node, (latency_s, loss) in links.items():
        network.add_link(node, "sub", ConstantLatency(component_rng(seed, f"lat:{node}"), latency_s), loss)
    return network


def _bus(env: simpy.Environment, network: Network) -> tuple[EventBus, list[Observation]]:
    seen: list[Observation] = []

    def observer(
        topic: str, publisher: str, subscriber: str, sent_s: float, arrived_s: float | None, outcome: str
    ) -> None:
        seen.append((env.now, topic, publisher, subscriber, sent_s, arrived_s, outcome))

    return EventBus(env, network.deliver, observer=observer), seen


def _consume(
    env: simpy.Environment, sub: Subscription, got: list[tuple[float, Event]], ack: bool = False
) -> None:
    def proc() -> Generator[simpy.Event, Any, None]:
        while True:
            event = yield sub.get()
            got.append((env.now, event))
            if ack:
                sub.ack(event)

    env.process(proc())


def _outcomes(seen: list[Observation]) -> list[str]:
    return [o[-1] for o in seen]


# --- the regression: QoS 0 under steady loss ------------------------------------------------


def test_qos0_telemetry_keeps_flowing_over_a_steadily_lossy_link() -> None:
    """100 Hz over a link losing 20 %: before the fix each gap re-armed the timer, so skips fell
    behind the gaps and the subscriber lagged further and further (published ~5.9 s by t = 10 s)."""
    env = simpy.Environment()
    latency_s, gap_timeout_s = 0.002, 0.1
    network = _net(env, pub=(latency_s, 0.2))
    bus, seen = _bus(env, network)
    bus.topic("joint_states", TopicConfig(gap_timeout_s=gap_timeout_s))
    sub = bus.subscribe("joint_states", "telemetry#0", "sub", SubscriberConfig(queue_size=10_000))
    got: list[tuple[float, Event]] = []
    _consume(env, sub, got)

    def driver() -> Generator[simpy.Event, Any, None]:
        for k in range(1000):  # at k * 10 ms
            bus.publish("joint_states", "driver#0", "pub", k)
            yield env.timeout(0.01)

    env.process(driver())
    env.run(until=10.0)

    last_at, last = got[-1]
    assert last_at > 9.8 and last.published_at > 9.8  # still receiving, and receiving recent events
    # no event waits behind a gap longer than the gap timeout
    assert max(t - e.published_at for t, e in got) <= latency_s + gap_timeout_s + 1e-9
    seqs = [e.seq for _, e in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    topic = bus.snapshot()["joint_states"]
    s = topic.subscribers["telemetry#0"]
    assert topic.published == topic.sent == 1000
    assert s.lost == topic.lost == network.snapshot()["pub--sub"].drops
    assert 150 < s.lost < 250
    assert s.dropped == s.duplicates == 0
    # every copy is, at the end, exactly one of these
    assert s.delivered + s.lost + s.late + s.held + s.in_flight == topic.published
    assert (topic.held, topic.in_flight) == (s.held, s.in_flight)
    # every skipped number was lost (constant latency: nothing comes late); only the last few
    # losses, not yet behind a held event or within its gap timeout, are not skipped yet
    assert s.late == 0
    assert 0 <= s.lost - s.gaps_skipped <= gap_timeout_s / 0.01 + 1
    assert s.delivered == len(got)
    # the observer saw each copy's fate: "ok" for the delivered, "lost" for the lost
    assert _outcomes(seen).count("ok") == s.delivered
    assert _outcomes(seen).count("lost") == s.lost


# --- the gap deadline ---------------------------------------------------------------------


def test_the_gap_deadline_runs_from_the_earliest_held_arrival_not_from_the_last_skip() -> None:
    env = simpy.Environment()
    network = _net(env, pub=(0.01, 0.0))
    link = network.route("pub", "sub")
    assert link is not None
    bus, _ = _bus(env, network)
    bus.topic("t", TopicConfig(gap_timeout_s=0.1))
    sub = bus.subscribe("t", "s", "sub")
    got: list[tuple[float, Event]] = []
    _consume(env, sub, got)

    def publisher() -> Generator[simpy.Event, Any, None]:
        for k in range(6):  # seqs 1..6 at 0, 10, ..., 50 ms; seqs 2 and 4 are lost
            undo = link.partition() if k in (1, 3) else None
            bus.publish("t", "p", "pub", k)
            if undo is not None:
                undo()
            yield env.timeout(0.01)

    env.process(publisher())
    env.run(until=1.0)
    # seq 3 held from 30 ms: skip at 130 ms; seq 5 held from 50 ms: skip at 150 ms (not 230 ms)
    assert [(t, e.seq) for t, e in got] == [
        (pytest.approx(0.01), 1),
        (pytest.approx(0.13), 3),
        (pytest.approx(0.15), 5),
        (pytest.approx(0.15), 6),
    ]
    assert sub.snapshot().gaps_skipped == 2


def test_a_held_event_past_its_deadline_skips_every_gap_below_it_at_once() -> None:
    """seq 4 arrives first (10 ms), seq 2 later (50 ms); seqs 1 and 3 come late (500 ms). At 110 ms
    seq 4 has waited its 100 ms: both gaps go, 2 and 4 are handed over together."""
    env = simpy.Environment()
    network = _net(env, a=(0.01, 0.0), b=(0.05, 0.0), c=(0.5, 0.0))
    bus, seen = _bus(env, network)
    bus.topic("t", TopicConfig(gap_timeout_s=0.1))
    sub = bus.subscribe("t", "s", "sub")
    got: list[tuple[float, Event]] = []
    _consume(env, sub, got)
    for node in ("c", "b", "c", "a"):  # seqs 1, 2, 3, 4 from the same publisher
        bus.publish("t", "p", node, node)

    env.run(until=0.06)
    snap = sub.snapshot()
    assert (snap.held, snap.in_flight, snap.delivered) == (2, 2, 0)
    assert bus.snapshot()["t"].held == 2
    env.run(until=1.0)

    assert [(t, e.seq) for t, e in got] == [(pytest.approx(0.11), 2), (pytest.approx(0.11), 4)]
    snap = sub.snapshot()
    assert (snap.gaps_skipped, snap.late, snap.held, snap.in_flight) == (2, 2, 0, 0)
    # the observer reports held copies when released, with their own arrival times
    assert [(round(now, 3), arrived, outcome) for now, *_, arrived, outcome in seen] == [
        (0.11, pytest.approx(0.05), "ok"),
        (0.11, pytest.approx(0.01), "ok"),
        (0.5, pytest.approx(0.5), "late"),
        (0.5, pytest.approx(0.5), "late"),
    ]


def test_qos1_gap_wait_still_covers_the_retries() -> None:
    config = TopicConfig(qos=QoS.AT_LEAST_ONCE, ack_timeout_s=0.05, max_deliveries=3, gap_timeout_s=0.1)
    assert config.effective_gap_timeout_s == pytest.approx(0.2)
    env = simpy.Environment()
    network = _net(env, pub=(0.01, 0.0))
    link = network.route("pub", "sub")
    assert link is not None
    bus, _ = _bus(env, network)
    bus.topic("cmd", config)
    sub = bus.subscribe("cmd", "s", "sub")
    got: list[tuple[float, Event]] = []
    _consume(env, sub, got, ack=True)
    heal = link.partition()
    bus.publish("cmd", "p", "pub", 1)  # first copy lost; the retry at 50 ms arrives at 60 ms
    heal()
    bus.publish("cmd", "p", "pub", 2)  # arrives at 10 ms, held behind seq 1
    env.run(until=1.0)
    assert [(t, e.seq, e.delivery) for t, e in got] == [
        (pytest.approx(0.06), 1, 2),
        (pytest.approx(0.06), 2, 1),
    ]
    assert sub.snapshot().gaps_skipped == 0


# --- the observer ---------------------------------------------------------------------------


def test_observer_reports_sent_and_arrival_times_and_names() -> None:
    env = simpy.Environment()
    network = _net(env, pub=(0.01, 0.0))
    bus, seen = _bus(env, network)
    bus.topic("t")
    bus.subscribe("t", "viewer", "sub")
    bus.subscribe("t", "local", "pub")  # same node: arrives at once

    def publisher() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(0.5)
        bus.publish("t", "driver#0", "pub", "x")

    env.process(publisher())
    env.run(until=1.0)
    assert seen == [
        (0.5, "t", "driver#0", "local", 0.5, 0.5, "ok"),
        (pytest.approx(0.51), "t", "driver#0", "viewer", 0.5, pytest.approx(0.51), "ok"),
    ]


def test_observer_reports_overflow_drops() -> None:
    for overflow, expected in [
        (Overflow.DROP_NEWEST, ["ok", "dropped"]),
        (Overflow.DROP_OLDEST, ["ok", "dropped", "ok"]),  # the evicted first copy, then the new one
    ]:
        env = simpy.Environment()
        network = _net(env, pub=(0.01, 0.0))
        bus, seen = _bus(env, network)
        bus.topic("t")
        bus.subscribe("t", "s", "sub", SubscriberConfig(queue_size=1, overflow=overflow))
        bus.publish("t", "p", "pub", 1)
        env.run(until=0.02)
        bus.publish("t", "p", "pub", 2)
        env.run(until=1.0)
        assert _outcomes(seen) == expected, overflow
        if overflow is Overflow.DROP_OLDEST:  # the evicted copy keeps its own times
            assert seen[1][4:] == (0.0, pytest.approx(0.01), "dropped")
            assert seen[1][0] == pytest.approx(0.03)


def test_observer_reports_qos1_losses_duplicates_and_dead_letters() -> None:
    env = simpy.Environment()
    network = _net(env, pub=(0.01, 1.0))
    bus, seen = _bus(env, network)
    bus.topic("cmd", TopicConfig(qos=QoS.AT_LEAST_ONCE, ack_timeout_s=0.05, max_deliveries=3))
    sub = bus.subscribe("cmd", "s", "sub")
    bus.publish("cmd", "p", "pub", "go")
    env.run(until=1.0)
    assert [(o[4], o[5], o[6]) for o in seen] == [
        (0.0, None, "lost"),
        (pytest.approx(0.05), None, "lost"),
        (pytest.approx(0.10), None, "lost"),
        (pytest.approx(0.10), None, "dead_letter"),  # the last copy's send time
    ]
    assert seen[-1][0] == pytest.approx(0.15)
    snap = sub.snapshot()
    assert (snap.lost, snap.dead_lettered) == (3, 1)
    assert bus.snapshot()["cmd"].dead_lettered == 1

    # an ack lost on the way back: the redelivered copy is a duplicate
    env = simpy.Environment()
    network = _net(env, pub=(0.01, 0.0))
    link = network.route("pub", "sub")
    assert link is not None
    bus, seen = _bus(env, network)
    bus.topic("cmd", TopicConfig(qos=QoS.AT_LEAST_ONCE, ack_timeout_s=0.05))
    sub = bus.subscribe("cmd", "s", "sub")
    got: list[tuple[float, Event]] = []
    _consume(env, sub, got, ack=True)
    bus.publish("cmd", "p", "pub", "go")
    env.run(until=0.005)
    heal = link.partition()
    env.run(until=0.02)  # the ack sent at 10 ms is lost
    heal()
    env.run(until=1.0)
    assert _outcomes(seen) == ["ok", "duplicate"]
    assert sub.snapshot().duplicates == 1
