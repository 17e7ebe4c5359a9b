"""The PyBullet plant: lazy stepping, validation, mounts and private clients."""

from __future__ import annotations

import math
from typing import Any

import pytest

from servo_core.catalogue import servo_spec
from servo_core.errors import ConfigError
from sim_models.bullet import MAX_IDLE, connect_direct, pybullet, release
from sim_models.plant import Mount, Plant
from sim_models.robots import pendulum_urdf, robot_urdf_text
from sim_models.servo.device import VirtualServo

CENTRE = 2048
RAD_PER_TICK = 2.0 * math.pi / 4096


def pendulum_plant(model: str = "xl430-w250", direction: float = 1.0, **kw: Any) -> Plant:
    servo = VirtualServo(servo_spec(model), 1)
    return Plant(pendulum_urdf(0.1, 0.2), [Mount("pivot", servo, direction=direction)], **kw)


def start_move(plant: Plant, goal_ticks: int = CENTRE + 700) -> VirtualServo:
    servo = plant.servo(1)
    servo.write_register("torque_enable", 1)
    servo.write_register("goal_position", goal_ticks)
    return servo


def arm6_plant() -> Plant:
    text = robot_urdf_text("arm6")
    names = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
    mounts = [Mount(n, VirtualServo(servo_spec("sts3215"), i + 1)) for i, n in enumerate(names)]
    return Plant(text, mounts)


# -- lazy stepping -----------------------------------------------------------------


def test_lazy_stepping_equals_eager_stepping() -> None:
    with pendulum_plant() as lazy, pendulum_plant() as eager:
        start_move(lazy)
        start_move(eager)
        lazy.advance_to(1.0)
        k = 0
        while (t := k * 0.0037) < 1.0:
            eager.advance_to(t)
            k += 1
        eager.advance_to(1.0)
        assert lazy.steps == eager.steps == 1000
        assert lazy.time == eager.time == pytest.approx(1.0)
        assert lazy.joint_positions(["pivot"]) == eager.joint_positions(["pivot"])  # exact
        assert lazy.joint_positions(["pivot"])[0] > 0.3  # it really moved


def test_lazy_stepping_equals_eager_on_six_joints_with_midway_command() -> None:
    names = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
    with arm6_plant() as lazy, arm6_plant() as eager:
        for plant in (lazy, eager):
            for servo in plant.servos:
                servo.write_register("torque_enable", 1)
                servo.write_register("goal_position", CENTRE + 200)
        lazy.advance_to(0.25)
        t = 0.0
        while t < 0.25:
            t = round(t + 0.0011, 10)
            eager.advance_to(min(t, 0.25))
        # a command written at 0.25 s acts from the next step on, on both
        for plant in (lazy, eager):
            plant.servo(3).write_register("goal_position", CENTRE - 300)
        lazy.advance_to(0.5)
        for k in range(1, 51):
            eager.advance_to(0.25 + 0.005 * k)
        assert lazy.steps == eager.steps == 500
        assert lazy.joint_positions(names) == eager.joint_positions(names)


def test_advance_to_the_past_does_nothing() -> None:
    with pendulum_plant() as plant:
        start_move(plant)
        plant.advance_to(0.2)
        steps, q = plant.steps, plant.joint_positions(["pivot"])
        for t in (0.1, 0.0, -1.0, 0.2, 0.2005):
            plant.advance_to(t)
            assert plant.steps == steps
            assert plant.joint_positions(["pivot"]) == q
        plant.advance_to(0.201)
        assert plant.steps == steps + 1


def test_time_is_integer_counted() -> None:
    with pendulum_plant(dt=0.002) as plant:
        plant.advance_to(0.0999999)  # within a step of 0.1: not yet
        assert plant.steps == 49
        plant.advance_to(0.1)
        assert plant.steps == 50
        assert plant.time == 50 * 0.002


def test_command_acts_from_the_next_step() -> None:
    with pendulum_plant(gravity=0.0) as plant:
        servo = plant.servo(1)
        servo.write_register("torque_enable", 1)
        plant.advance_to(0.2)
        assert servo.pwm == 0.0  # holding still, on goal
        servo.write_register("goal_position", CENTRE + 900)
        plant.advance_to(0.2)  # no time has passed: nothing happens
        assert servo.pwm == 0.0 and plant.steps == 200
        plant.advance_to(0.201)  # the first step after the write already drives
        assert plant.steps == 201
        assert servo.pwm == 1.0


@pytest.mark.parametrize("dt", [0.0, -0.001, math.nan, math.inf])
def test_bad_dt_is_a_config_error(dt: float) -> None:
    with pytest.raises(ConfigError, match="dt"):
        pendulum_plant(dt=dt)


def test_servo_on_missing_joint_names_it() -> None:
    servo = VirtualServo(servo_spec("sts3215"), 4)
    with pytest.raises(ConfigError) as info:
        Plant(pendulum_urdf(), [Mount("elbow", servo)])
    message = str(info.value)
    assert "'elbow'" in message
    assert "pivot" in message  # the joints the robot does have


def test_initial_position_of_unknown_joint_is_a_config_error() -> None:
    servo = VirtualServo(servo_spec("sts3215"), 1)
    with pytest.raises(ConfigError, match="knee"):
        Plant(pendulum_urdf(), [Mount("pivot", servo)], initial_positions={"knee": 0.1})


# -- mounts ------------------------------------------------------------------------


def test_mount_direction_reverses_the_joint() -> None:
    goal = CENTRE + 500  # +0.767 rad in the servo's frame
    with (
        pendulum_plant(direction=1.0, gravity=0.0) as forward,
        pendulum_plant(direction=-1.0, gravity=0.0) as reverse,
    ):
        start_move(forward, goal)
        start_move(reverse, goal)
        forward.advance_to(1.0)
        reverse.advance_to(1.0)
        (q_fwd,) = forward.joint_positions(["pivot"])
        (q_rev,) = reverse.joint_positions(["pivot"])
    target = 500 * RAD_PER_TICK
    assert q_fwd == pytest.approx(target, abs=10 * RAD_PER_TICK)
    assert q_rev == pytest.approx(-target, abs=10 * RAD_PER_TICK)
    # the servo sees its own frame: both report the goal they were given
    assert forward.servos[0].position == pytest.approx(target, abs=10 * RAD_PER_TICK)
    assert reverse.servos[0].position == pytest.approx(target, abs=10 * RAD_PER_TICK)


def test_mount_offset_shifts_the_servo_frame() -> None:
    servo = VirtualServo(servo_spec("xl430-w250"), 1)
    with Plant(pendulum_urdf(), [Mount("pivot", servo, offset_rad=0.5)], gravity=0.0) as plant:
        assert servo.position == pytest.approx(0.5)  # joint at 0, servo at 0.5
        servo.write_register("torque_enable", 1)
        servo.write_register("goal_position", CENTRE)  # servo 0 rad = joint -0.5 rad
        plant.advance_to(1.0)
        assert plant.joint_positions(["pivot"])[0] == pytest.approx(-0.5, abs=10 * RAD_PER_TICK)


# -- clients -----------------------------------------------------------------------


def test_plants_use_private_clients() -> None:
    with pendulum_plant() as solo:
        start_move(solo)
        solo.advance_to(0.5)
        expected = solo.joint_positions(["pivot"])

    a = pendulum_plant()
    b = pendulum_plant(gravity=0.0)  # a different world alive at the same time
    try:
        assert a.client != b.client
        start_move(a)
        start_move(b, CENTRE - 900)
        for k in range(1, 51):  # interleaved
            a.advance_to(0.01 * k)
            b.advance_to(0.01 * k)
        assert a.joint_positions(["pivot"]) == expected
        assert b.joint_positions(["pivot"])[0] < 0
    finally:
        a.close()
        b.close()


def test_close_hands_the_client_back_empty_and_is_idempotent() -> None:
    pb = pybullet()
    plant = pendulum_plant()
    client = plant.client
    other = pendulum_plant()
    try:
        plant.close()
        assert pb.isConnected(client) and pb.getNumBodies(physicsClientId=client) == 0
        plant.close()  # again: no error
        assert pb.getNumBodies(physicsClientId=other.client) == 1  # the other plant is untouched
        other.advance_to(0.01)
        with pendulum_plant() as reused:
            assert reused.client == client  # the emptied client serves the next plant
            assert pb.getNumBodies(physicsClientId=client) == 1
    finally:
        other.close()


def test_only_a_few_emptied_clients_are_kept() -> None:
    pb = pybullet()
    plants = [pendulum_plant() for _ in range(MAX_IDLE + 2)]
    clients = [p.client for p in plants]
    for plant in plants:
        plant.close()
    assert sum(pb.isConnected(c) for c in clients) == MAX_IDLE  # the rest were disconnected


def test_failed_construction_releases_its_client() -> None:
    pb = pybullet()
    servo = VirtualServo(servo_spec("sts3215"), 1)
    with pytest.raises(ConfigError):
        Plant(pendulum_urdf(), [Mount("nope", servo)])
    client = connect_direct()  # the failed plant's client, given back with its world emptied
    try:
        assert pb.getNumBodies(physicsClientId=client) == 0
    finally:
        release(client)


def test_a_description_that_loaded_is_not_loaded_again_and_a_bad_one_always_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sim_models.bullet as bullet
    from sim_models.plant import check_loadable

    connects: list[int] = []
    real = bullet.connect_direct

    def counting() -> int:
        connects.append(1)
        return real()

    monkeypatch.setattr(bullet, "connect_direct", counting)
    text = pendulum_urdf(0.123, 0.2)  # a description no other test loads
    check_loadable(text)
    check_loadable(text)
    assert len(connects) == 1
    for _ in range(2):
        with pytest.raises(ConfigError, match="PyBullet could not load"):
            check_loadable("<robot name='broken'><link name='a'/><joint/></robot>")
    assert len(connects) == 3
