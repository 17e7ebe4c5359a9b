"""Each fault kind of the `faults:` timeline has the effect it names, on the one clock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import twin
from twin.scenario import ScenarioError

from .conftest import BASE

# Commands every 0.25 s, so that faults hit some of them and not others.
TASK = {
    "type": "waypoints",
    "steps": [
        {"at_s": 0.25 * k, "pose": {"pan": 20 if k % 2 else -20, "tilt": 5}, "duration_s": 0.2}
        for k in range(1, 12)
    ],
}


def run(write_scenario: Callable[..., Path], faults: list[dict], **changes: Any) -> dict:
    path = write_scenario(duration=3.0, task=TASK, assertions=[], faults=faults, **changes)
    return twin.run(twin.load(path)).metrics


@pytest.fixture
def baseline(write_scenario: Callable[..., Path]) -> dict:
    return run(write_scenario, [])


def test_no_faults_no_failures(baseline: dict) -> None:
    assert baseline["commands"]["failed"] == 0 and baseline["faults"]["injected"] == 0


def test_service_crash_loses_what_reaches_it(write_scenario, baseline) -> None:
    m = run(write_scenario, [{"type": "service_crash", "service": "gateway", "at_s": 1.0, "duration_s": 1.0}])
    assert m["faults"]["injected"] == 1
    assert m["services"]["gateway"]["lost"] >= 3
    assert 3 <= m["commands"]["failed"] <= 5  # the commands of t = 1.0 .. 2.0
    assert m["commands"]["completed"] >= 6, "the gateway is back after the crash"


def test_service_hang_makes_callers_time_out(write_scenario) -> None:
    m = run(write_scenario, [{"type": "service_hang", "service": "planner", "at_s": 1.0, "duration_s": 1.0}])
    # Commands of t = 1.0 .. 1.5 wait for the hung planner longer than the gateway's 500 ms.
    assert m["commands"]["failed"] >= 2
    assert m["services"]["gateway"]["errors"] == m["commands"]["failed"]
    assert m["commands"]["completed"] >= 7, "it answers again after the hang"


def test_service_slowdown_stretches_latency(write_scenario, baseline) -> None:
    services = [
        {**svc, "processing": {"type": "constant", "ms": 1}} if svc["type"] == "planner" else svc
        for svc in BASE["topology"]["services"]
    ]
    topology = {**BASE["topology"], "services": services}
    slow = {"type": "service_slowdown", "service": "planner", "at_s": 0.0, "duration_s": 3.0, "factor": 30}
    fast = run(write_scenario, [], topology=topology)
    slowed = run(write_scenario, [slow], topology=topology)
    assert slowed["latency"]["command"]["p50_ms"] > fast["latency"]["command"]["p50_ms"] + 25


def test_link_latency_spike(write_scenario, baseline) -> None:
    m = run(
        write_scenario, [{"type": "link_latency", "between": ["ops", "robot"], "at_s": 0.0, "extra_ms": 40}]
    )
    assert (
        m["links"]["ops--robot"]["latency"]["p50_ms"]
        > baseline["links"]["ops--robot"]["latency"]["p50_ms"] + 39
    )


def test_link_loss_and_partition(write_scenario) -> None:
    lossy = run(
        write_scenario, [{"type": "link_loss", "between": ["ops", "robot"], "at_s": 0.0, "loss": 0.5}]
    )
    assert lossy["links"]["ops--robot"]["drops"] > 0
    cut = run(
        write_scenario,
        [{"type": "link_partition", "between": ["robot", "ops"], "at_s": 1.0, "duration_s": 1.0}],
    )
    assert 3 <= cut["commands"]["failed"] <= 5 and cut["commands"]["completed"] >= 6


def test_servo_overload_drags_its_joint(write_scenario, baseline) -> None:
    m = run(write_scenario, [{"type": "servo_overload", "servo": 1, "at_s": 0.5, "torque_nm": 0.8}])
    pan, tilt = m["tracking"]["joints"]["pan"], m["tracking"]["joints"]["tilt"]
    assert pan["rms_error_deg"] > baseline["tracking"]["joints"]["pan"]["rms_error_deg"] + 4
    assert tilt["rms_error_deg"] < 2 * baseline["tracking"]["joints"]["tilt"]["rms_error_deg"] + 0.1


def test_servo_overheat_shuts_it_down_and_stops_the_machine(write_scenario) -> None:
    m = run(write_scenario, [{"type": "servo_overheat", "servo": 2, "at_s": 1.0}])
    assert m["servos"]["2"]["faults"] == "overheat"
    assert m["driver"]["halted"] == 1 and m["driver"]["failed_servos"] == 1  # safe_stop by default
    assert m["commands"]["failed"] >= 6


def test_encoder_noise_shows_in_the_readings(write_scenario, baseline) -> None:
    m = run(write_scenario, [{"type": "encoder_noise", "servo": 2, "at_s": 0.0, "std_deg": 2.0}])
    assert (
        m["tracking"]["joints"]["tilt"]["rms_error_deg"]
        > baseline["tracking"]["joints"]["tilt"]["rms_error_deg"] + 1
    )


def test_servo_disconnect_and_bus_errors(write_scenario) -> None:
    gone = run(write_scenario, [{"type": "servo_disconnect", "servo": 1, "at_s": 1.0, "duration_s": 0.5}])
    # Five missed reads in a row (each tried three times), as on a real bus, then the servo is
    # marked failed and the default policy (safe_stop) stops the machine; the other servo holds.
    assert gone["driver"]["bus_errors"] == 5
    assert (gone["bus"]["no_reply"], gone["bus"]["retries"]) == (15, 10)
    assert gone["driver"]["failed_servos"] == 1 and gone["driver"]["halted"] == 1
    noisy = run(write_scenario, [{"type": "bus_errors", "at_s": 0.0, "rate": 0.1}])
    assert noisy["bus"]["errors_injected"] > 20
    assert noisy["driver"]["bus_errors"] <= 2, "one read in a thousand loses all three attempts"
    assert noisy["commands"]["failed"] == 0, "a lost cycle now and then never stops the machine"


def run_with(write_scenario: Callable[..., Path], sets: list[str]) -> dict:
    """The fault-test scenario with `--set` overrides, as `twin run --set` gives them."""
    path = write_scenario(duration=3.0, task=TASK, assertions=[])
    return twin.run(twin.load(path, sets)).metrics


def test_every_bus_transaction_corrupt_marks_the_servos_failed_and_the_policy_acts(write_scenario) -> None:
    m = run_with(write_scenario, ["faults=[{type: bus_errors, at_s: 1.0, rate: 1.0}]"])
    # fail_after (5) reads, each tried 1 + retries (2) times, every status packet of both
    # servos corrupt; then both are marked failed and safe_stop holds the machine.
    assert m["bus"]["errors_injected"] == m["bus"]["no_reply"] == 15
    assert (m["bus"]["retries"], m["bus"]["checksum_errors"]) == (10, 30)
    assert m["driver"]["bus_errors"] == 5
    assert m["driver"]["failed_servos"] == 2 and m["driver"]["halted"] == 1
    assert m["commands"]["completed"] == 4 and m["commands"]["failed"] == 7  # refused from t = 1.25 on
    on = run_with(
        write_scenario,
        ["faults=[{type: bus_errors, at_s: 1.0, rate: 1.0}]", "plant.bus.on_servo_failure=hold_others"],
    )
    assert on["driver"]["failed_servos"] == 2 and on["driver"]["halted"] == 0, "the scenario's policy decides"


@pytest.mark.parametrize("policy", ["safe_stop", "hold_others"])
def test_a_run_whose_every_bus_transaction_fails_is_incomplete_never_pass(
    write_scenario, policy: str
) -> None:
    sets = ["faults=[{type: bus_errors, at_s: 1.0, rate: 1.0}]", f"plant.bus.on_servo_failure={policy}"]
    result = twin.run(twin.load(write_scenario(assertions=[]), sets))
    assert result.verdict == "INCOMPLETE" and not result.passed
    reason = "every servo failed" if policy == "hold_others" else "halted by the safe_stop policy"
    assert reason in result.reason


def test_retries_absorb_most_bus_errors_at_a_rate_of_0_3(write_scenario) -> None:
    m = run_with(write_scenario, ["faults=[{type: bus_errors, at_s: 0, rate: 0.3}]"])
    bus, driver = m["bus"], m["driver"]
    assert bus["retries"] > 60
    # A failed attempt is either retried or the last of a read that is lost.
    assert bus["no_reply"] == bus["retries"] + driver["bus_errors"]
    assert driver["bus_errors"] < bus["no_reply"] / 5
    assert driver["failed_servos"] == 0 and driver["halted"] == 0
    assert m["commands"]["failed"] == 0


def test_fault_runs_are_deterministic(write_scenario) -> None:
    faults = [
        {"type": "encoder_noise", "servo": 1, "at_s": 0.5, "std_deg": 1.0},
        {"type": "bus_errors", "at_s": 0, "rate": 0.2},
    ]
    assert run(write_scenario, faults) == run(write_scenario, faults)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (
            {"type": "link_loss", "between": ["ops", "cloud"], "at_s": 1, "loss": 0.5},
            "faults.0.between: no link joins",
        ),
        ({"type": "servo_overheat", "servo": 9, "at_s": 1}, "faults.0.servo: no servo with id 9"),
        (
            {"type": "service_crash", "service": "planner", "replica": 3, "at_s": 1},
            "faults.0.replica: planner has 1",
        ),
        (
            {"type": "service_crash", "service": "planner", "at_s": 9},
            "faults.0.at_s: starts at 9 s, after the run ends",
        ),
        ({"type": "meteor", "at_s": 1}, "faults.0.type"),
    ],
)
def test_bad_faults_are_named(write_scenario, fault: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace(".", r"\.")):
        twin.load(write_scenario(duration=3.0, faults=[fault]))


ROOT = Path(__file__).resolve().parents[2]


def test_registry_outage_leaves_callers_on_their_cached_view() -> None:
    scenario = twin.load(
        ROOT / "scenarios" / "discovery_failover.yaml",
        ["faults=[{type: registry_outage, at_s: 1.0, duration_s: 2.0}]", "assertions=[]"],
    )
    m = twin.run(scenario).metrics
    assert m["discovery"]["stale_uses"] > 0
    assert m["commands"]["failed"] == 0, "a stale view of healthy replicas still routes well"
    assert m["discovery"]["heartbeats_lost"] > 0


def test_rolling_update_needs_a_registry(write_scenario) -> None:
    with pytest.raises(ScenarioError, match="a rolling_update needs topology.discovery"):
        twin.load(
            write_scenario(duration=3.0, faults=[{"type": "rolling_update", "service": "planner", "at_s": 1}])
        )


def test_estop_on_the_event_bus_stops_all_motion(write_scenario) -> None:
    path = write_scenario(duration=3.0, task=TASK, assertions=[], faults=[{"type": "estop", "at_s": 1.1}])
    result = twin.run(twin.load(path))
    m = result.metrics
    assert m["events"]["estop"]["published"] == 1 and m["events"]["estop"]["delivered"] == 1
    assert m["driver"]["halted"] == 1
    assert m["commands"]["completed"] == 4 and m["commands"]["failed"] == 7  # from t = 1.25 on
    t, goal, _ = result.telemetry.arrays()
    assert (goal[t > 1.2] == goal[t > 1.2][0]).all(), "no setpoint moves after the e-stop"


def test_alarms_reach_telemetry_at_least_once_over_a_lossy_link(write_scenario) -> None:
    topology = {
        **BASE["topology"],
        "services": [
            {**svc, "node": "ops"} if svc["type"] == "telemetry" else svc
            for svc in BASE["topology"]["services"]
        ],
    }
    faults = [
        {"type": "link_loss", "between": ["ops", "robot"], "at_s": 0.5, "loss": 0.5},
        {"type": "servo_overheat", "servo": 2, "at_s": 1.0},
    ]
    path = write_scenario(duration=3.0, task=TASK, assertions=[], faults=faults, topology=topology)
    machine_metrics = twin.run(twin.load(path)).metrics
    alarms = machine_metrics["events"]["alarms"]
    assert alarms["published"] == 2  # servo 2: overheat, then failed (safe_stop)
    assert alarms["delivered"] >= 2, "both reach telemetry despite the lossy link"
    assert alarms["redeliveries"] > 0


def test_a_servo_missing_from_the_start_is_handled_like_one_lost_later(write_scenario) -> None:
    m = run(write_scenario, [{"type": "servo_disconnect", "servo": 1, "at_s": 0.0}])
    assert m["driver"]["failed_servos"] == 1 and m["driver"]["halted"] == 1
    assert m["driver"]["cycles"] > 250, "the machine runs on with the servo that answers"


def test_an_estop_needs_a_way_to_the_driver() -> None:
    with pytest.raises(ScenarioError, match="no link joins them"):
        twin.load(ROOT / "scenarios" / "pan_tilt.yaml", ["faults=[{type: estop, at_s: 1}]"])


def test_a_crash_during_a_rolling_update_is_not_undone_by_the_update() -> None:
    """Replica 0 crashes for good at t = 2.1 s while the update of it (from 2.0 s) is under way:
    the update's restart must not bring the crashed replica back."""
    scenario = twin.load(
        ROOT / "scenarios" / "rolling_update.yaml",
        [
            "faults=[{type: rolling_update, service: planner, at_s: 2.0},"
            " {type: service_crash, service: planner, replica: 0, at_s: 2.1}]",
            "assertions=[]",
        ],
    )
    result = twin.run(scenario)
    assert result.metrics["faults"]["updates_completed"] == 1
    assert result.metrics["discovery"]["expired"] >= 1, "the crashed replica stops heartbeating and expires"
