"""Scenario validation: shipped files, and bad input with exact messages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

import twin
from twin.scenario import ScenarioError, load_scenario, scenario_schema
from twin.scenario.checks import metric_paths

from .conftest import BASE, scenario_dict

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.yaml"))


def test_scenarios_folder_is_not_empty() -> None:
    names = {p.name for p in SCENARIOS}
    assert {"pan_tilt.yaml", "arm6_pick_place.yaml"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_every_shipped_scenario_is_valid(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem


def test_shipped_scenarios_keep_their_contract() -> None:
    root = Path(__file__).resolve().parents[2] / "scenarios"
    pan_tilt = load_scenario(root / "pan_tilt.yaml")
    assert [(s.id, s.model) for s in pan_tilt.plant.servos] == [(1, "xl430-w250"), (2, "xl430-w250")]
    arm = load_scenario(root / "arm6_pick_place.yaml")
    assert [s.id for s in arm.plant.servos] == [1, 2, 3, 4, 5, 6]
    assert {s.model for s in arm.plant.servos} == {"sts3215"}
    assert arm.task.type == "pick_and_place"
    names = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
    so100 = load_scenario(root / "so100_follower.yaml")  # LeRobot's SO-100/SO-101 follower
    assert [(s.id, s.joint, s.model) for s in so100.plant.servos] == [
        (k, name, "sts3215") for k, name in enumerate(names, 1)
    ]
    koch = load_scenario(root / "koch_follower.yaml")  # LeRobot's Koch follower
    models = ["xl430-w250"] * 2 + ["xl330-m288"] * 4
    assert [(s.id, s.joint, s.model) for s in koch.plant.servos] == list(
        zip(range(1, 7), names, models, strict=True)
    )


def _servos(*changes: dict) -> dict:
    plant = scenario_dict()["plant"]
    for k, change in enumerate(changes):
        plant["servos"][k].update(change)
    return plant


BAD = [
    (
        "duplicate servo id",
        {"plant": _servos({}, {"id": 1})},
        "plant.servos.1.id: servo id 1 is already used by servo 0",
    ),
    (
        "servo on a joint the robot lacks",
        {"plant": _servos({"joint": "yaw"})},
        "plant.servos.0.joint: the robot has no joint 'yaw'",
    ),
    (
        "unknown servo model",
        {"plant": _servos({"model": "xl430-w25"})},
        "plant.servos.0.model: unknown servo model 'xl430-w25' (did you mean 'xl430-w250'?)",
    ),
    (
        "limits outside the servo's range",
        {"plant": _servos({"limits_deg": [-100, 100], "offset_deg": 120})},
        "plant.servos.0.limits_deg: limits [-100, 100]° are outside the servo's range",
    ),
    (
        "limits in the wrong order",
        {"plant": _servos({"limits_deg": [50, -50]})},
        "plant.servos.0.limits_deg: lower limit must be below upper limit",
    ),
    (
        "link to an unknown node",
        {
            "topology": {
                **BASE["topology"],
                "links": [{"between": ["ops", "cloud"]}, {"between": ["ops", "robot"]}],
            }
        },
        "topology.links.0.between: unknown node 'cloud'",
    ),
    (
        "services on different nodes without a link",
        {"topology": {**BASE["topology"], "links": []}},
        "topology.links: operator on 'ops' talks to gateway on 'robot', but no link joins those nodes",
    ),
    (
        "unknown metric in an assertion",
        {"assertions": ["tracking.max_eror_deg < 2"]},
        "assertions.0: unknown metric 'tracking.max_eror_deg' (did you mean 'tracking.max_error_deg'?)",
    ),
    (
        "assertion that does not parse",
        {"assertions": ["tracking.max_error_deg is small"]},
        "assertions.0: cannot parse assertion 'tracking.max_error_deg is small'",
    ),
    (
        "waypoint outside the limits",
        {"task": {"type": "waypoints", "steps": [{"at_s": 0, "pose": {"tilt": 75}, "duration_s": 1}]}},
        "task.steps.0.pose.tilt: 75° is outside joint tilt's limits [-60.0, 60.0]°",
    ),
    (
        "unknown named pose",
        {"task": {"type": "waypoints", "steps": [{"at_s": 0, "pose": "home", "duration_s": 1}]}},
        "task.steps.0.pose: no pose named 'home'",
    ),
    (
        "unknown task type",
        {"task": {"type": "dance"}},
        "task.type:",
    ),
    (
        "wrong type",
        {"duration": "long"},
        "duration: Input should be a valid number",
    ),
    (
        "negative duration",
        {"duration": -1},
        "duration: Input should be greater than 0",
    ),
    (
        "unknown key",
        {"physics": {"dt": 0.001}},
        "physics.dt: unknown field 'dt' (did you mean 'dt_s'?)",
    ),
    (
        "driver with replicas",
        {
            "topology": {
                **BASE["topology"],
                "services": [
                    *BASE["topology"]["services"][:3],
                    {"type": "driver", "node": "robot", "replicas": 2},
                    BASE["topology"]["services"][4],
                ],
            }
        },
        "topology.services.3.replicas: driver owns the servo bus: it has exactly one replica",
    ),
    (
        "mixed protocols on one bus",
        {"plant": _servos({}, {"model": "sts3215"})},
        "plant.servos: one bus cannot mix Dynamixel and Feetech servos",
    ),
]


@pytest.mark.parametrize(("case", "changes", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_scenario_names_file_line_and_field(
    write_scenario: Callable[..., Path], case: str, changes: dict, expected: str
) -> None:
    path = write_scenario(**changes)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    lines = str(info.value).splitlines()
    matching = [line for line in lines if expected in line]
    assert matching, f"{case}: expected {expected!r} in:\n{info.value}"
    assert matching[0].startswith(f"{path}:"), "each problem names the file"
    assert all(p.file == str(path) for p in info.value.problems)


def test_problems_carry_line_numbers(write_scenario: Callable[..., Path]) -> None:
    path = write_scenario(plant=_servos({}, {"id": 1}))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    problem = info.value.problems[0]
    text = path.read_text().splitlines()
    assert problem.line is not None and "id: 1" in text[problem.line - 1]


def test_yaml_tag_that_builds_objects_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f'name: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ScenarioError, match="is not allowed"):
        load_scenario(path)
    assert not marker.exists()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no-such.yaml"):
        load_scenario(tmp_path / "no-such.yaml")


def test_set_overrides_a_field(write_scenario: Callable[..., Path]) -> None:
    path = write_scenario()
    scenario = load_scenario(path, ["duration=7.5", "plant.servos.1.id=9"])
    assert scenario.duration == 7.5 and scenario.plant.servos[1].id == 9


def test_set_that_breaks_a_rule_is_reported(write_scenario: Callable[..., Path]) -> None:
    path = write_scenario()
    with pytest.raises(ScenarioError, match="servo id 1 is already used"):
        load_scenario(path, ["plant.servos.1.id=1"])


def test_schema_is_json_schema_with_every_section() -> None:
    schema = scenario_schema()
    assert schema["type"] == "object"
    for section in (
        "name",
        "seed",
        "duration",
        "physics",
        "plant",
        "topology",
        "task",
        "assertions",
        "outputs",
    ):
        assert section in schema["properties"]
    assert schema["additionalProperties"] is False


def test_metric_paths_cover_joints_and_links(write_scenario: Callable[..., Path]) -> None:
    scenario = load_scenario(write_scenario())
    paths = metric_paths(scenario, ["pan", "tilt"])
    assert {"tracking.joints.pan.max_error_deg", "links.ops--robot.drops", "latency.command.p99_ms"} <= paths


INERTIA = '<inertia ixx="0.001" iyy="0.001" izz="0.001" ixy="0" ixz="0" iyz="0"/>'
URDF_WITH_DOTTED_JOINT = f"""<robot name="r">
  <link name="base"><inertial><mass value="1"/>{INERTIA}</inertial></link>
  <joint name="arm.j1" type="revolute"><parent link="base"/><child link="arm"/><axis xyz="0 0 1"/>
    <limit lower="-1" upper="1" effort="1" velocity="5"/></joint>
  <link name="arm"><inertial><mass value="0.1"/>{INERTIA}</inertial>
    <visual><geometry><mesh filename="part.obj"/></geometry></visual></link>
</robot>
"""

CUBE_OBJ = "v 0 0 0\nv 0.01 0 0\nv 0 0.01 0\nv 0 0 0.01\nf 1 2 3\nf 1 2 4\nf 1 3 4\nf 2 3 4\n"


def _one_servo_robot(tmp_path: Path, urdf_text: str, joint: str) -> Path:
    (tmp_path / "robot").mkdir()
    (tmp_path / "robot" / "arm.urdf").write_text(urdf_text)
    (tmp_path / "robot" / "part.obj").write_text(CUBE_OBJ)
    data = scenario_dict(
        plant={
            "robot": {"urdf": "robot/arm.urdf"},
            "servos": [{"id": 1, "model": "xl430-w250", "joint": joint}],
        },
        task={"type": "waypoints", "steps": [{"at_s": 0.1, "pose": {joint: 10}, "duration_s": 0.5}]},
        assertions=[],
        duration=1.0,
    )
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_urdf_paths_are_relative_to_the_scenario_and_find_their_meshes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _one_servo_robot(tmp_path, URDF_WITH_DOTTED_JOINT.replace("arm.j1", "j1"), "j1")
    monkeypatch.chdir("/")
    scenario = load_scenario(path)
    assert scenario.plant.robot.urdf == str(tmp_path / "robot" / "arm.urdf")
    assert twin.run(scenario).metrics["tracking"]["samples"] > 0


def test_joint_names_that_cannot_be_metric_paths_are_refused(tmp_path: Path) -> None:
    path = _one_servo_robot(tmp_path, URDF_WITH_DOTTED_JOINT, "arm.j1")
    with pytest.raises(ScenarioError, match=r"joint name 'arm.j1' may hold only letters"):
        load_scenario(path)


def test_a_urdf_pybullet_cannot_load_is_refused_at_validation(tmp_path: Path) -> None:
    broken = URDF_WITH_DOTTED_JOINT.replace("arm.j1", "j1").replace(
        '<child link="arm"/>', '<child link="ghost"/>'
    )
    path = _one_servo_robot(tmp_path, broken, "j1")
    with pytest.raises(ScenarioError, match="plant.robot.urdf: PyBullet could not load"):
        load_scenario(path)


MORE_BAD = [
    (
        "a duration shorter than one physics step",
        {"duration": 1e-6},
        "duration: must be at least one physics step",
    ),
    (
        "pendulum parameters that overflow",
        {
            "plant": {
                "robot": {"urdf": "pendulum", "params": {"length_m": 1e200, "mass_kg": 1.0}},
                "servos": [{"id": 1, "model": "xl430-w250", "joint": "pivot"}],
            }
        },
        "plant.robot.urdf: pendulum: length_m must be a number > 0 and <= 10",
    ),
    (
        "an offset that leaves no range",
        {"plant": _servos({"limits_deg": None, "offset_deg": 1000})},
        "plant.servos.0.offset_deg: with this offset and direction, the servo's range and joint pan's limits",
    ),
    (
        "a start pose outside the limits",
        {"plant": {**_servos(), "robot": {"urdf": "pan_tilt", "initial_pose_deg": {"tilt": 90}}}},
        "plant.robot.initial_pose_deg.tilt: 90° is outside joint tilt's limits [-60.0, 60.0]°",
    ),
    (
        "an assertion on a text metric",
        {"assertions": ["servos.1.faults == 0"]},
        "assertions.0: metric 'servos.1.faults' is text, not a number",
    ),
]


@pytest.mark.parametrize(("case", "changes", "expected"), MORE_BAD, ids=[b[0] for b in MORE_BAD])
def test_more_bad_scenarios(
    write_scenario: Callable[..., Path], case: str, changes: dict, expected: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(write_scenario(**changes))
    assert expected in str(info.value), f"{case}: {info.value}"


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_every_shipped_scenario_passes_its_own_assertions(path: Path) -> None:
    result = twin.run(load_scenario(path))
    assert result.scenario.assertions, "a shipped scenario states what must hold"
    assert result.passed, [f"{a.expression} (measured {a.measured:g})" for a in result.failures]


def test_a_supply_voltage_over_the_rating_warns_and_the_servo_runs_with_its_alarm(
    write_scenario: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from twin.cli import main
    from twin.scenario import ScenarioWarning

    path = write_scenario(plant=_servos({"supply_v": 14}), duration=1.0, assertions=[])
    with pytest.warns(ScenarioWarning, match=r"scenario.yaml:\d+: plant.servos.0.supply_v: 14 V is outside"):
        scenario = load_scenario(path)
    metrics = twin.run(scenario).metrics
    assert "input_voltage" in metrics["servos"]["1"]["faults"]
    assert metrics["tracking"]["samples"] > 90, "the servo keeps running on its alarm"
    assert main(["validate", str(path)]) == 0
    assert "warning: " in capsys.readouterr().err
