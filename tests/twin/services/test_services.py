"""Service messaging: request/reply over links, timeouts, replicas, and the built-in services."""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simpy

import twin
from sim_models.network import ConstantLatency, Network
from twin.patterns.eventbus import EventBus
from twin.services.api import MachineInfo, Message, RequestTimeout, Service, ServiceParams, handles
from twin.services.calls import CallPipeline
from twin.services.hosting import EventHub, Hosting, ReplicaContext, serve
from twin.services.messaging import MessageBus
from twin.services.replica import Replica

from ..conftest import BASE

RNG = np.random.default_rng(0)


class Echo(Service[ServiceParams]):
    """Answers every request with its own replica name."""

    @handles("ping")
    def ping(self, request: Message) -> str:
        return self.ctx.name


def _world(
    latency_s: float = 0.002, loss: float = 0.0, replicas: int = 1, processing_s: float = 0.001
) -> tuple[simpy.Environment, MessageBus, ReplicaContext[Any]]:
    env = simpy.Environment()
    network = Network(env, seed=1)
    network.add_link("a", "b", ConstantLatency(RNG, latency_s), loss)
    messages = MessageBus(env, network)
    hub = EventHub(EventBus(env, network.deliver), {}, {})
    hosting = Hosting(env, 1, messages, CallPipeline(messages, {}), hub, None, MachineInfo())
    hosting.service_classes["echo"] = Echo
    client = Replica(env, "client", 0, "a", ConstantLatency(RNG, 0.0))
    messages.add(client)
    client_ctx: ReplicaContext[Any] = ReplicaContext(hosting, client, ServiceParams(), None, 1.0)
    for k in range(replicas):
        replica = Replica(env, "echo", k, "b", ConstantLatency(RNG, processing_s))
        messages.add(replica)
        ctx: ReplicaContext[Any] = ReplicaContext(hosting, replica, ServiceParams(), None, 1.0)
        echo = Echo(ctx)
        env.process(serve(ctx, echo, hosting))
        echo.start()
    return env, messages, client_ctx


def _call(env: simpy.Environment, gen: Generator, results: list[Any]) -> None:
    def proc():  # type: ignore[no-untyped-def]
        try:
            answer = yield from gen
            results.append((env.now, answer))
        except RequestTimeout as exc:
            results.append((env.now, exc))

    env.process(proc())


def test_request_takes_two_link_crossings_and_the_processing_time() -> None:
    env, messages, client = _world(latency_s=0.002, processing_s=0.001)
    results: list[Any] = []
    _call(env, client.call("echo", "ping"), results)
    env.run()
    assert results == [(pytest.approx(0.005), "echo#0")]
    assert messages.pending == 0


def test_a_lost_request_times_out_and_leaves_nothing_pending() -> None:
    env, messages, client = _world(loss=1.0)
    results: list[Any] = []
    _call(env, client.call("echo", "ping", timeout_s=0.05), results)
    env.run()
    ((when, outcome),) = results
    assert when == pytest.approx(0.05) and isinstance(outcome, RequestTimeout)
    assert "no reply within 50 ms" in str(outcome)
    assert messages.pending == 0


def test_a_late_reply_is_ignored() -> None:
    env, messages, client = _world(latency_s=0.03)
    results: list[Any] = []
    _call(env, client.call("echo", "ping", timeout_s=0.05), results)
    env.run()
    assert len(results) == 1 and isinstance(results[0][1], RequestTimeout)
    assert messages.pending == 0


def test_requests_rotate_over_replicas() -> None:
    env, _, client = _world(replicas=3)
    results: list[Any] = []
    for _ in range(6):
        _call(env, client.call("echo", "ping"), results)
    env.run()
    assert sorted(body for _, body in results) == ["echo#0", "echo#0", "echo#1", "echo#1", "echo#2", "echo#2"]


def test_a_cut_link_fails_every_command(write_scenario: Callable[..., Path]) -> None:
    topology = {**BASE["topology"], "links": [{"between": ["ops", "robot"], "loss": 1.0}]}
    result = twin.run(twin.load(write_scenario(topology=topology)))
    commands = result.metrics["commands"]
    assert commands == {"sent": 2, "completed": 0, "failed": 2, "pending": 0}
    assert result.metrics["links"]["ops--robot"]["drops"] == 2
    assert result.metrics["latency"]["command"]["count"] == 0
    assert [a.expression for a in result.failures] == ["commands.failed == 0"]
    # the machine holds still where it started
    _, goal, actual = result.telemetry.arrays()
    assert np.abs(goal).max() < 1e-3


def test_a_slow_planner_makes_the_gateway_answer_with_an_error(write_scenario: Callable[..., Path]) -> None:
    services = [
        {**svc, "processing": {"type": "constant", "ms": 800}} if svc["type"] == "planner" else svc
        for svc in BASE["topology"]["services"]
    ]
    result = twin.run(twin.load(write_scenario(topology={**BASE["topology"], "services": services})))
    assert result.metrics["commands"]["failed"] == 2
    assert result.metrics["services"]["gateway"]["errors"] == 2
    # The deadline travels with the request: the planner drops the stale commands
    # instead of moving the machine long after the operator was told they failed.
    assert result.metrics["services"]["planner"]["expired"] == 2
    assert result.metrics["latency"]["command"]["count"] == 0
    _, goal, _ = result.telemetry.arrays()
    assert abs(goal).max() < 1e-3


def test_a_command_for_some_joints_lets_the_others_finish_their_moves(
    write_scenario: Callable[..., Path],
) -> None:
    task = {
        "type": "waypoints",
        "steps": [
            {"at_s": 0.2, "pose": {"pan": 60}, "duration_s": 1.5},
            {"at_s": 0.7, "pose": {"tilt": 20}, "duration_s": 1.0},  # while pan is still moving
        ],
    }
    result = twin.run(twin.load(write_scenario(duration=3.0, task=task, assertions=[])))
    _, goal, actual = result.telemetry.arrays()
    assert np.degrees(goal[-1]) == pytest.approx([60.0, 20.0], abs=1e-6)
    assert np.degrees(actual[-1]) == pytest.approx([60.0, 20.0], abs=0.5)


def test_deadline_misses_count_overrunning_cycles(write_scenario: Callable[..., Path]) -> None:
    # At 9600 baud one sync read of two XL430s takes ~92 ms: every 10 ms cycle overruns.
    result = twin.run(twin.load(write_scenario(duration=1.0, assertions=[]), ["plant.bus.baud=9600"]))
    driver = result.metrics["driver"]
    assert driver["deadline_misses"] == driver["cycles"]
    assert driver["skipped_periods"] > 5 * driver["cycles"]


class FailingAfter:
    """Wraps a bus: from `at_s` on, servo `bad` has failed for good: the bus gives up on it
    ("bus"), or it answers with an overheat alarm, its torque cut by its firmware ("alarm")."""

    def __init__(self, inner: Any, env: simpy.Environment, bad: int, at_s: float, how: str) -> None:
        self.inner, self.env, self.bad, self.at_s, self.how = inner, env, bad, at_s, how
        self.torque_off: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _check(self, ids: Any) -> None:
        from hw_adapters import ServoFailedError

        if self.how == "bus" and self.env.now >= self.at_s and self.bad in list(ids):
            raise ServoFailedError([self.bad])

    def read_states(self, ids: Any) -> Any:
        import dataclasses

        from hw_adapters import ServoFault

        self._check(ids)
        states = self.inner.read_states(ids)
        if self.how == "alarm" and self.env.now >= self.at_s and self.bad in states:
            states[self.bad] = dataclasses.replace(states[self.bad], faults=ServoFault.OVERHEAT)
        return states

    def write_goals(self, goals: Any) -> None:
        self._check(goals)
        self.inner.write_goals(goals)

    def set_torque(self, ids: Any, enabled: bool) -> None:
        if not enabled:
            self.torque_off.extend(ids)
        self.inner.set_torque(ids, enabled)


@pytest.mark.parametrize("how", ["bus", "alarm"])
@pytest.mark.parametrize("policy", ["safe_stop", "hold_others", "torque_off"])
def test_a_failed_servo_triggers_the_scenario_policy(
    write_scenario: Callable[..., Path], policy: str, how: str
) -> None:
    from twin.assembly import build

    task = {
        "type": "waypoints",
        "steps": [
            {"at_s": 0.1, "pose": {"pan": 30, "tilt": 10}, "duration_s": 0.5},
            {"at_s": 1.0, "pose": {"pan": -30, "tilt": -10}, "duration_s": 0.5},
        ],
    }
    scenario = twin.load(
        write_scenario(duration=2.0, task=task, assertions=[]), [f"plant.bus.on_servo_failure={policy}"]
    )
    wrappers: list[FailingAfter] = []

    def wrap(bus: Any, env: simpy.Environment) -> Any:
        wrappers.append(FailingAfter(bus, env, bad=2, at_s=0.8, how=how))
        return wrappers[-1]

    machine = build(scenario, wrap_bus=wrap)
    driver = machine.driver
    assert driver is not None
    (wrapped,) = wrappers
    try:
        machine.env.run(until=2.0)
    finally:
        machine.close()
    assert driver.failed_servos_ids == {2}
    machine.log.finish()
    t, goal, _ = machine.log.telemetry().arrays()
    assert t[-1] > 1.9, "telemetry goes on after a halt, to the end of the run"
    operator = machine.operator
    assert operator is not None
    outcomes = (operator.completed.value, operator.failed.value)
    if policy == "hold_others":
        assert outcomes == (2, 0) and not driver.halted
        assert np.degrees(goal[-1, 0]) == pytest.approx(-30.0, abs=0.1), "the healthy servo carries on"
    else:
        assert outcomes == (1, 1) and driver.halted == policy
        assert np.degrees(goal[-1, 0]) == pytest.approx(30.0, abs=0.1), "no motion after the failure"
    if policy == "torque_off":
        # Every servo, the failed one too (it may answer again), and again while halted.
        assert wrapped.torque_off[:2] == [1, 2] and len(wrapped.torque_off) >= 4


def test_the_gateway_refuses_unknown_clients_and_commands_beyond_its_rate(
    write_scenario: Callable[..., Path],
) -> None:
    steps = [{"at_s": 0.1 + 0.05 * k, "pose": {"pan": 10 + k}, "duration_s": 0.05} for k in range(10)]
    task = {"type": "waypoints", "steps": steps}

    def services(operator_token: str | None, rate: dict | None) -> dict:
        out = []
        for svc in BASE["topology"]["services"]:
            if svc["type"] == "operator":
                svc = {**svc, "token": operator_token}
            if svc["type"] == "gateway":
                svc = {**svc, "clients": {"operator": "s3cret"}, **({"rate_limit": rate} if rate else {})}
            out.append(svc)
        return {**BASE["topology"], "services": out}

    def run(token: str | None, rate: dict | None = None) -> dict:
        path = write_scenario(duration=1.0, task=task, assertions=[], topology=services(token, rate))
        return twin.run(twin.load(path)).metrics

    good = run("s3cret")
    assert good["commands"]["failed"] == 0 and good["gateway"]["unauthorized"] == 0
    wrong = run("guess")
    assert wrong["commands"]["failed"] == 10 and wrong["gateway"]["unauthorized"] == 10
    limited = run("s3cret", {"limit": 4, "period_ms": 1000})
    assert limited["commands"]["completed"] == 4 and limited["gateway"]["rate_limited"] == 6
