"""Joint states on the event bus in a run: the subscriber's overflow policy decides who pays."""

from __future__ import annotations

from pathlib import Path

import twin

SCENARIO = Path(__file__).resolve().parents[3] / "scenarios" / "eventbus_backpressure.yaml"


def _run(*sets: str) -> dict:
    return twin.run(twin.load(SCENARIO, ["duration=3", "assertions=[]", *sets])).metrics


def test_drop_oldest_keeps_the_loop_on_time_and_counts_the_drops() -> None:
    m = _run()
    assert m["driver"]["deadline_misses"] == 0 and m["driver"]["blocked"] == 0
    events = m["events"]["joint_states"]
    assert events["published"] == 300 and events["dropped"] >= 140
    # Every state is accounted for: recorded, dropped, or still in the 50-deep queue.
    assert m["tracking"]["samples"] + events["dropped"] + 51 >= events["published"]


def test_block_makes_the_slow_subscriber_hold_the_control_loop_back() -> None:
    m = _run("topology.subscriptions.0.overflow=block")
    assert m["events"]["joint_states"]["dropped"] == 0
    assert m["driver"]["blocked"] > 50
    assert m["driver"]["deadline_misses"] > 50, "backpressure reaches the control loop"
    assert m["driver"]["cycles"] <= 160, "it runs at the subscriber's pace once the queue is full"


def test_qos1_with_a_lossy_link_redelivers() -> None:
    m = _run(
        "topology.topics.joint_states.qos=1",
        "topology.services.4.node=edge",  # telemetry on the other side of the edge--controller link
        "faults=[{type: link_loss, between: [edge, controller], at_s: 0.5, loss: 0.2}]",
        "topology.services.4.processing={type: constant, ms: 1}",
    )
    assert m["events"]["joint_states"]["lost"] > 0
    assert m["events"]["joint_states"]["redeliveries"] > 0


def test_qos0_telemetry_over_a_lossy_link_keeps_recording_to_the_end() -> None:
    """A lost joint state is skipped after the gap timeout measured from the earliest held
    event; the stream never stalls behind successive gaps, and every event is accounted for."""
    path = Path(__file__).resolve().parents[3] / "scenarios" / "pan_tilt.yaml"
    scenario = twin.load(path, ["topology.links.1.loss=0.2", "topology.services.4.node=edge"])
    result = twin.run(scenario)
    t, _, _ = result.telemetry.arrays()
    assert t[-1] > 9.8, f"telemetry stopped at {t[-1]:.2f} s of 10 s"
    e = result.metrics["events"]["joint_states"]
    assert e["lost"] > 100
    assert e["delivered"] + e["lost"] + e["held"] >= e["published"] - 2  # at most the copies still in flight
