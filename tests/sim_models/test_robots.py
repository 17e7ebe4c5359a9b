"""The built-in robot descriptions load in PyBullet and match what they promise."""

import itertools
import math
from collections.abc import Iterator
from pathlib import Path

import pybullet
import pytest

from servo_core.errors import ConfigError
from sim_models.robots import BUILTIN_ROBOTS, actuated_joints, pendulum_urdf, robot_urdf_text

G = 9.81

EXPECTED_JOINTS = {
    "pan_tilt": ["pan", "tilt"],
    "arm6": ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"],
    "pendulum": ["pivot"],
}

# Plausible total mass of the moving links, kg.
MOVING_MASS_KG = {"pan_tilt": (0.08, 0.3), "arm6": (0.3, 0.7), "pendulum": (0.45, 0.55)}


class Sim:
    """A private PyBullet DIRECT client with one robot loaded with a fixed base."""

    def __init__(self, urdf_text: str, tmp_path: Path, flags: int = 0) -> None:
        path = tmp_path / "robot.urdf"
        path.write_text(urdf_text, encoding="utf-8")
        self.cid = pybullet.connect(pybullet.DIRECT)
        self.body = pybullet.loadURDF(
            str(path),
            useFixedBase=True,
            flags=pybullet.URDF_USE_INERTIA_FROM_FILE | flags,
            physicsClientId=self.cid,
        )
        self.n = pybullet.getNumJoints(self.body, physicsClientId=self.cid)

    def joint_info(self, j: int) -> tuple:
        return pybullet.getJointInfo(self.body, j, physicsClientId=self.cid)

    def close(self) -> None:
        pybullet.disconnect(physicsClientId=self.cid)


@pytest.fixture
def sim_of(tmp_path: Path) -> Iterator:
    sims: list[Sim] = []

    def make(urdf_text: str, flags: int = 0) -> Sim:
        sims.append(Sim(urdf_text, tmp_path, flags))
        return sims[-1]

    yield make
    for sim in sims:
        sim.close()


@pytest.mark.parametrize("name", BUILTIN_ROBOTS)
def test_builtin_loads_with_expected_joints(name: str, sim_of) -> None:
    text = robot_urdf_text(name)
    sim = sim_of(text)
    movable = [
        sim.joint_info(j)[1].decode() for j in range(sim.n) if sim.joint_info(j)[2] == pybullet.JOINT_REVOLUTE
    ]
    assert movable == EXPECTED_JOINTS[name]
    assert list(actuated_joints(text)) == EXPECTED_JOINTS[name]


@pytest.mark.parametrize("name", BUILTIN_ROBOTS)
def test_actuated_joints_agree_with_pybullet(name: str, sim_of) -> None:
    text = robot_urdf_text(name)
    sim = sim_of(text)
    parsed = actuated_joints(text)
    for j in range(sim.n):
        info = sim.joint_info(j)
        if info[2] != pybullet.JOINT_REVOLUTE:
            continue
        lower, upper = parsed[info[1].decode()]
        if math.isinf(lower):
            # PyBullet reports an unlimited (continuous) joint as lower > upper.
            assert math.isinf(upper) and info[8] > info[9]
        else:
            assert (info[8], info[9]) == pytest.approx((lower, upper))
            assert info[10] > 0.0 and info[11] > 0.0  # effort (N m), velocity (rad/s)


def test_builtin_limits_as_specified() -> None:
    pan_tilt = actuated_joints(robot_urdf_text("pan_tilt"))
    assert pan_tilt == {"pan": (-2.6, 2.6), "tilt": (-1.5, 1.5)}
    arm = actuated_joints(robot_urdf_text("arm6"))
    for name, (lower, upper) in arm.items():
        assert -3.0 <= lower < 0.0 < upper <= 3.0, name
    assert arm["gripper"] == (-0.2, 1.7)


@pytest.mark.parametrize("name", BUILTIN_ROBOTS)
def test_moving_mass_plausible(name: str, sim_of) -> None:
    sim = sim_of(robot_urdf_text(name))
    masses = [pybullet.getDynamicsInfo(sim.body, j, physicsClientId=sim.cid)[0] for j in range(sim.n)]
    assert all(m > 0.0 for m in masses)
    lo, hi = MOVING_MASS_KG[name]
    assert lo <= sum(masses) <= hi


@pytest.mark.parametrize(
    ("length_m", "mass_kg", "arm_mass_kg"), [(0.1, 0.5, 0.0), (0.3, 0.2, 0.0), (0.2, 0.4, 0.1)]
)
def test_pendulum_gravity_torque(length_m: float, mass_kg: float, arm_mass_kg: float, sim_of) -> None:
    sim = sim_of(pendulum_urdf(length_m, mass_kg, arm_mass_kg))
    pybullet.setGravity(0.0, 0.0, -G, physicsClientId=sim.cid)
    q = 0.5
    (tau,) = pybullet.calculateInverseDynamics(sim.body, [q], [0.0], [0.0], physicsClientId=sim.cid)
    # Torque the servo must apply to hold the arm (gravity's torque is its negative).
    expected = (mass_kg + arm_mass_kg / 2.0) * G * length_m * math.sin(q)
    assert tau == pytest.approx(expected, rel=0.005)


def test_pendulum_held_by_gravity_torque(sim_of) -> None:
    length_m, mass_kg, q = 0.1, 0.5, 0.5
    sim = sim_of(pendulum_urdf(length_m, mass_kg))
    cid, body = sim.cid, sim.body
    pybullet.setGravity(0.0, 0.0, -G, physicsClientId=cid)
    pybullet.resetJointState(body, 0, q, physicsClientId=cid)
    # Switch off PyBullet's default velocity motor, then hold with m g L sin q.
    pybullet.setJointMotorControl2(body, 0, pybullet.VELOCITY_CONTROL, force=0.0, physicsClientId=cid)
    hold = mass_kg * G * length_m * math.sin(q)
    for _ in range(240):
        pybullet.setJointMotorControl2(body, 0, pybullet.TORQUE_CONTROL, force=hold, physicsClientId=cid)
        pybullet.stepSimulation(physicsClientId=cid)
    assert pybullet.getJointState(body, 0, physicsClientId=cid)[0] == pytest.approx(q, abs=1e-3)


def test_arm6_no_self_collision_at_home(sim_of) -> None:
    sim = sim_of(robot_urdf_text("arm6"), flags=pybullet.URDF_USE_SELF_COLLISION)
    cid, body = sim.cid, sim.body
    parent = {j: sim.joint_info(j)[16] for j in range(sim.n)}
    for a, b in itertools.combinations(range(-1, sim.n), 2):
        if parent[b] == a:
            continue  # parent-child pairs never collide in PyBullet
        points = pybullet.getClosestPoints(body, body, 0.0, linkIndexA=a, linkIndexB=b, physicsClientId=cid)
        assert points == (), (a, b)
    pybullet.stepSimulation(physicsClientId=cid)
    assert pybullet.getContactPoints(body, body, physicsClientId=cid) == ()


def test_robot_urdf_text_reads_a_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.urdf"
    path.write_text(robot_urdf_text("pan_tilt"), encoding="utf-8")
    assert robot_urdf_text(str(path)) == path.read_text(encoding="utf-8")
    assert robot_urdf_text(path) == path.read_text(encoding="utf-8")


def test_pendulum_params_pass_through() -> None:
    text = robot_urdf_text("pendulum", length_m=0.25, mass_kg=0.3)
    assert text == pendulum_urdf(0.25, 0.3)


def test_continuous_and_unlimited_joints() -> None:
    text = """<robot name="r">
      <link name="a"/><link name="b"/><link name="c"/><link name="d"/>
      <joint name="f" type="fixed"><parent link="a"/><child link="b"/></joint>
      <joint name="w" type="continuous"><parent link="b"/><child link="c"/></joint>
      <joint name="r" type="revolute"><parent link="c"/><child link="d"/>
        <limit lower="-1" upper="2" effort="1" velocity="1"/></joint>
    </robot>"""
    assert actuated_joints(text) == {"w": (-math.inf, math.inf), "r": (-1.0, 2.0)}


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: robot_urdf_text("hexapod"), "registered: arm6, koch, pan_tilt, pendulum"),
        (lambda: robot_urdf_text("pendulum", lenght_m=0.1), "length_m, mass_kg, arm_mass_kg"),
        (lambda: robot_urdf_text("arm6", length_m=0.1), "length_m"),
        (lambda: robot_urdf_text("pendulum", length_m=-0.1), "length_m"),
        (lambda: robot_urdf_text("pendulum", mass_kg=math.nan), "mass_kg"),
        (lambda: pendulum_urdf(arm_mass_kg=-1.0), "arm_mass_kg"),
        (lambda: pendulum_urdf(length_m=math.inf), "length_m"),
        (lambda: pendulum_urdf(mass_kg=0.0), "mass_kg"),
        (lambda: pendulum_urdf(length_m="0.1"), "length_m"),  # type: ignore[arg-type]
        (lambda: robot_urdf_text("no/such/robot.urdf"), "no/such/robot.urdf"),
        (lambda: robot_urdf_text("missing.urdf"), "missing.urdf"),
        (lambda: actuated_joints("<robot><joint"), "malformed"),
        (lambda: actuated_joints("<notarobot/>"), "robot"),
        (
            lambda: actuated_joints('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "x">]><robot name="&a;"/>'),
            "DOCTYPE",
        ),
        (
            lambda: actuated_joints(
                '<robot><joint name="j" type="revolute"><parent link="a"/><child link="b"/></joint></robot>'
            ),
            "no <limit>",
        ),
    ],
)
def test_bad_inputs_raise_config_error(call, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        call()


def test_path_takes_no_params(tmp_path: Path) -> None:
    path = tmp_path / "mine.urdf"
    path.write_text(robot_urdf_text("pan_tilt"), encoding="utf-8")
    with pytest.raises(ConfigError, match="no parameters"):
        robot_urdf_text(str(path), length_m=0.1)


def test_path_with_doctype_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.urdf"
    path.write_text('<!DOCTYPE robot [<!ENTITY a "aaaa">]><robot name="&a;"/>', encoding="utf-8")
    with pytest.raises(ConfigError, match="DOCTYPE"):
        robot_urdf_text(str(path))
