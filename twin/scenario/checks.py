"""Cross-field checks of a scenario: what no single field can know alone.

Each problem is (field path, message); the loader turns paths into file lines.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator

from sim_models.errors import ConfigError
from sim_models.plant import check_loadable, urdf_file
from sim_models.robots import actuated_joints, robot_urdf_text
from sim_models.servo.catalogue import catalogue
from twin.control.joints import Joint
from twin.control.limits import JointLimits
from twin.observe.metrics import breaker_name, build_metrics, empty_run, flatten, numeric_paths
from twin.scenario.models import (
    SERVICE_TYPES,
    EmergencyStop,
    LinkFault,
    PickAndPlaceTask,
    RegistryOutage,
    RollingUpdate,
    Scenario,
    ServiceFault,
    ServoFaultBase,
    SineSweepTask,
    WaypointsTask,
)

Path = tuple[str | int, ...]
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
Problem = tuple[Path, str]

# Who talks to whom in the reference topology (both directions carry traffic).
CONVERSATIONS = (
    ("operator", "gateway"),
    ("gateway", "planner"),
    ("planner", "driver"),
    ("driver", "telemetry"),
)


def check_scenario(s: Scenario) -> list[Problem]:
    problems = list(_timing(s))
    plant = list(_plant(s))
    joints = None if plant else _joints(s)
    if joints is not None:
        plant += _joint_ranges(s, joints)
    problems += plant + list(_topology(s))
    if joints is not None and not plant:
        problems += _task(s, joints)
        problems += _assertions(s, [j.name for j in joints])
    problems += _faults(s)
    problems += _calls(s)
    return problems


def _calls(s: Scenario) -> Iterator[Problem]:
    topo = s.topology
    seen: set[tuple[str, str]] = set()
    for k, call in enumerate(topo.calls):
        pair = (call.caller, call.callee)
        if pair not in CONVERSATIONS[:3]:
            yield (
                ("topology", "calls", k),
                (
                    f"{call.caller} does not call {call.callee}; calls are "
                    + ", ".join(f"{a} -> {b}" for a, b in CONVERSATIONS[:3])
                ),
            )
        if pair in seen:
            yield ("topology", "calls", k), f"a second entry for {call.caller} -> {call.callee}"
        seen.add(pair)
    disc = topo.discovery
    if disc is None:
        return
    nodes = {n.name for n in topo.nodes}
    if disc.node not in nodes:
        yield (
            ("topology", "discovery", "node"),
            f"unknown node {disc.node!r}; nodes: {', '.join(sorted(nodes))}",
        )
        return
    linked = {frozenset(link.between) for link in topo.links}
    for node in sorted({svc.node for svc in topo.services}):
        if node != disc.node and frozenset((node, disc.node)) not in linked:
            yield (
                ("topology", "discovery", "node"),
                (
                    f"services on {node!r} send heartbeats to the registry on {disc.node!r}, "
                    "but no link joins them"
                ),
            )
    if disc.heartbeat_ms >= disc.ttl_ms:
        yield (
            ("topology", "discovery", "heartbeat_ms"),
            "must be shorter than ttl_ms, or every instance flaps",
        )


def _faults(s: Scenario) -> Iterator[Problem]:
    replicas = {svc.type: svc.replicas for svc in s.topology.services}
    links = {frozenset(link.between) for link in s.topology.links}
    ids = {servo.id for servo in s.plant.servos}
    for k, fault in enumerate(s.faults):
        at = ("faults", k)
        if fault.at_s >= s.duration:
            yield at + ("at_s",), f"starts at {fault.at_s:g} s, after the run ends ({s.duration:g} s)"
        if isinstance(fault, ServiceFault):
            if fault.service not in replicas:
                yield at + ("service",), f"the scenario has no {fault.service} service"
            elif fault.replica is not None and fault.replica >= replicas[fault.service]:
                yield (
                    at + ("replica",),
                    (f"{fault.service} has {replicas[fault.service]} replica(s), numbered from 0"),
                )
        elif isinstance(fault, LinkFault):
            if frozenset(fault.between) not in links:
                a, b = fault.between
                yield at + ("between",), f"no link joins {a} and {b}"
        elif isinstance(fault, EmergencyStop):
            where = {svc.type: svc.node for svc in s.topology.services}
            op, drv = where.get("operator"), where.get("driver")
            if op and drv and op != drv and frozenset((op, drv)) not in links:
                yield (
                    at + ("type",),
                    (
                        f"the e-stop goes from the operator on {op!r} straight to the driver on {drv!r}, "
                        "but no link joins them"
                    ),
                )
        elif isinstance(fault, RollingUpdate | RegistryOutage) and s.topology.discovery is None:
            yield at + ("type",), f"a {fault.type} needs topology.discovery (a registry)"
        elif isinstance(fault, ServoFaultBase) and fault.servo not in ids:
            yield at + ("servo",), f"no servo with id {fault.servo}; ids: {', '.join(map(str, sorted(ids)))}"


def _timing(s: Scenario) -> Iterator[Problem]:
    if s.duration < s.physics.dt_s:
        yield ("duration",), f"must be at least one physics step ({s.physics.dt_s:g} s), got {s.duration:g}"


def _plant(s: Scenario) -> Iterator[Problem]:
    robot = s.plant.robot
    try:
        urdf = robot_urdf_text(robot.urdf, **robot.params)
        urdf_joints = actuated_joints(urdf)
        check_loadable(urdf, urdf_file(robot.urdf))
    except ConfigError as exc:
        yield ("plant", "robot", "urdf"), str(exc)
        return
    known = catalogue()
    seen_ids: dict[int, int] = {}
    seen_joints: dict[str, int] = {}
    protocols = set()
    for k, servo in enumerate(s.plant.servos):
        at = ("plant", "servos", k)
        if servo.id in seen_ids:
            yield at + ("id",), f"servo id {servo.id} is already used by servo {seen_ids[servo.id]}"
        seen_ids.setdefault(servo.id, k)
        if servo.joint in seen_joints:
            yield (
                at + ("joint",),
                f"joint {servo.joint!r} already has servo {seen_joints[servo.joint]}",
            )
        seen_joints.setdefault(servo.joint, k)
        if servo.joint in urdf_joints and not _SAFE_NAME.match(servo.joint):
            yield (
                at + ("joint",),
                (
                    f"joint name {servo.joint!r} may hold only letters, digits, '_' and '-': "
                    "it becomes a metric path and a CSV column"
                ),
            )
        if servo.joint not in urdf_joints:
            yield (
                at + ("joint",),
                (
                    f"the robot has no joint {servo.joint!r}{_did_you_mean(servo.joint, urdf_joints)}; "
                    f"joints: {', '.join(urdf_joints)}"
                ),
            )
        if servo.model not in known:
            yield (
                at + ("model",),
                (
                    f"unknown servo model {servo.model!r}{_did_you_mean(servo.model, known)}; "
                    f"catalogue: {', '.join(sorted(known))}"
                ),
            )
        else:
            spec = known[servo.model]
            protocols.add(spec.protocol)
            if servo.supply_v is not None and not spec.min_voltage_v <= servo.supply_v <= spec.max_voltage_v:
                yield (
                    at + ("supply_v",),
                    (
                        f"{servo.supply_v:g} V is outside the {servo.model} operating range "
                        f"{spec.min_voltage_v:g}-{spec.max_voltage_v:g} V"
                    ),
                )
        if servo.limits_deg is not None and servo.joint in urdf_joints:
            yield from _limits(servo.limits_deg, urdf_joints[servo.joint], servo, at)
    if len(protocols) > 1:
        yield ("plant", "servos"), "one bus cannot mix Dynamixel and Feetech servos"
    for joint in robot.initial_pose_deg:
        if joint not in urdf_joints:
            yield ("plant", "robot", "initial_pose_deg", joint), f"the robot has no joint {joint!r}"


def _limits(limits_deg: tuple[float, float], urdf: tuple[float, float], servo, at: Path) -> Iterator[Problem]:  # type: ignore[no-untyped-def]
    from twin.control.limits import Calibration
    from twin.runtime import servo_range_in_joint

    lo, hi = (math.radians(x) for x in limits_deg)
    s_lo, s_hi = servo_range_in_joint(Calibration(servo.direction, math.radians(servo.offset_deg)))
    if lo < s_lo - 1e-9 or hi > s_hi + 1e-9:
        yield (
            at + ("limits_deg",),
            (
                f"limits [{limits_deg[0]:g}, {limits_deg[1]:g}]° are outside the servo's range "
                f"[{math.degrees(s_lo):.1f}, {math.degrees(s_hi):.1f}]° (after offset and direction)"
            ),
        )
    elif lo < urdf[0] - 1e-9 or hi > urdf[1] + 1e-9:
        yield (
            at + ("limits_deg",),
            (
                f"limits [{limits_deg[0]:g}, {limits_deg[1]:g}]° are outside the robot's joint limits "
                f"[{math.degrees(urdf[0]):.1f}, {math.degrees(urdf[1]):.1f}]°"
            ),
        )


def _joint_ranges(s: Scenario, joints: list[Joint]) -> Iterator[Problem]:
    """Limits that leave no room (an offset that turns the servo's range away) and start poses."""
    by_name = {j.name: j for j in joints}
    for k, joint in enumerate(joints):
        if joint.limits.lower >= joint.limits.upper:
            yield (
                ("plant", "servos", k, "offset_deg"),
                (
                    f"with this offset and direction, the servo's range and joint {joint.name}'s limits "
                    f"do not overlap: {_degrees(joint.limits)}"
                ),
            )
    for name, deg in s.plant.robot.initial_pose_deg.items():
        joint = by_name.get(name)
        if joint is not None and not joint.limits.contains(math.radians(deg)):
            yield (
                ("plant", "robot", "initial_pose_deg", name),
                (f"{deg:g}° is outside joint {name}'s limits {_degrees(joint.limits)}"),
            )


def _degrees(lim: JointLimits) -> str:
    return f"[{math.degrees(lim.lower):.1f}, {math.degrees(lim.upper):.1f}]°"


def _joints(s: Scenario) -> list[Joint]:
    from twin.runtime import build_joints

    robot = s.plant.robot
    return build_joints(s, actuated_joints(robot_urdf_text(robot.urdf, **robot.params)))


def _topology(s: Scenario) -> Iterator[Problem]:
    topo = s.topology
    nodes: set[str] = set()
    for k, node in enumerate(topo.nodes):
        if node.name in nodes:
            yield ("topology", "nodes", k, "name"), f"duplicate node {node.name!r}"
        nodes.add(node.name)
    placed: dict[str, str] = {}
    for k, svc in enumerate(topo.services):
        if svc.type in placed:
            yield (
                ("topology", "services", k, "type"),
                f"a second {svc.type} service (use replicas:)",
            )
        placed.setdefault(svc.type, svc.node)
        if svc.node not in nodes:
            yield (
                ("topology", "services", k, "node"),
                f"unknown node {svc.node!r}; nodes: {', '.join(sorted(nodes))}",
            )
        if svc.type == "driver" and svc.replicas != 1:
            yield (
                ("topology", "services", k, "replicas"),
                "the driver owns the bus: it has exactly one replica",
            )
    for missing in (t for t in SERVICE_TYPES if t not in placed):
        yield (
            ("topology", "services"),
            f"no {missing} service: a machine needs {', '.join(SERVICE_TYPES)}",
        )
    linked: set[frozenset[str]] = set()
    for k, link in enumerate(topo.links):
        a, b = link.between
        for end in (a, b):
            if end not in nodes:
                yield (
                    ("topology", "links", k, "between"),
                    f"unknown node {end!r}; nodes: {', '.join(sorted(nodes))}",
                )
        if a == b:
            yield (
                ("topology", "links", k, "between"),
                f"a link joins two different nodes, got {a!r} twice",
            )
        key = frozenset((a, b))
        if key in linked:
            yield ("topology", "links", k, "between"), f"a second link between {a} and {b}"
        linked.add(key)
    for x, y in CONVERSATIONS:
        nx, ny = placed.get(x), placed.get(y)
        if nx and ny and nx != ny and frozenset((nx, ny)) not in linked and nx in nodes and ny in nodes:
            yield (
                ("topology", "links"),
                f"{x} on {nx!r} talks to {y} on {ny!r}, but no link joins those nodes",
            )


def _task(s: Scenario, joints: list[Joint]) -> Iterator[Problem]:
    task = s.task
    by_name = {j.name: j for j in joints}

    def pose(p: dict[str, float], at: Path) -> Iterator[Problem]:
        for name, deg in p.items():
            joint = by_name.get(name)
            if joint is None:
                yield (
                    at + (name,),
                    f"no servo drives joint {name!r}; driven joints: {', '.join(by_name)}",
                )
            elif not joint.limits.contains(math.radians(deg)):
                yield at + (name,), f"{deg:g}° is outside joint {name}'s limits {_degrees(joint.limits)}"

    if isinstance(task, WaypointsTask):
        for name, p in task.poses.items():
            yield from pose(p, ("task", "poses", name))
        for k, step in enumerate(task.steps):
            if isinstance(step.pose, str):
                if step.pose not in task.poses:
                    yield (
                        ("task", "steps", k, "pose"),
                        (f"no pose named {step.pose!r}; poses: {', '.join(task.poses) or 'none'}"),
                    )
            else:
                yield from pose(step.pose, ("task", "steps", k, "pose"))
    elif isinstance(task, SineSweepTask):
        for name, cfg in task.joints.items():
            at = ("task", "joints", name)
            joint = by_name.get(name)
            if joint is None:
                yield at, f"no servo drives joint {name!r}; driven joints: {', '.join(by_name)}"
                continue
            lo, hi = (math.radians(cfg.offset_deg + d * cfg.amplitude_deg) for d in (-1, 1))
            if not (joint.limits.contains(lo) and joint.limits.contains(hi)):
                yield at, f"offset ± amplitude leaves joint {name}'s limits"
            f = max(cfg.frequency_hz, cfg.end_frequency_hz or 0.0)
            peak = math.radians(cfg.amplitude_deg) * 2 * math.pi * f
            if peak > joint.limits.max_velocity:
                yield (
                    at,
                    (
                        f"peak velocity {math.degrees(peak):.0f}°/s exceeds joint {name}'s "
                        f"{math.degrees(joint.limits.max_velocity):.0f}°/s"
                    ),
                )
    elif isinstance(task, PickAndPlaceTask):
        if task.gripper_joint not in by_name:
            yield ("task", "gripper_joint"), f"no servo drives joint {task.gripper_joint!r}"
        for field in ("home", "above_pick", "pick", "above_place", "place"):
            yield from pose(getattr(task, field), ("task", field))
        if task.gripper_joint in by_name:
            for field in ("gripper_open_deg", "gripper_closed_deg"):
                yield from pose({task.gripper_joint: getattr(task, field)}, ("task",))


def _empty_metrics(s: Scenario, joint_names: list[str]) -> dict:
    links = sorted({link.name for link in s.topology.links})
    services = sorted({svc.type for svc in s.topology.services})
    ids = [servo.id for servo in s.plant.servos]
    replicas = {svc.type: svc.replicas for svc in s.topology.services}
    breakers = [
        breaker_name(c.caller, f"{c.callee}#{k}")
        for c in s.topology.calls
        if c.breaker is not None
        for k in range(replicas.get(c.callee, 0))
    ]
    return build_metrics(empty_run(s.name, joint_names, links, ids, services, breakers))


def metric_paths(s: Scenario, joint_names: list[str]) -> set[str]:
    """Every numeric metric path the scenario's runs will produce."""
    return numeric_paths(_empty_metrics(s, joint_names))


def text_paths(s: Scenario, joint_names: list[str]) -> set[str]:
    metrics = _empty_metrics(s, joint_names)
    return set(flatten(metrics)) - numeric_paths(metrics)


def _assertions(s: Scenario, joint_names: list[str]) -> Iterator[Problem]:
    valid = metric_paths(s, joint_names)
    text = text_paths(s, joint_names)
    for k, assertion in enumerate(s.assertions):
        if assertion.path in text:
            yield ("assertions", k), f"metric {assertion.path!r} is text, not a number: it cannot be compared"
        elif assertion.path not in valid:
            yield (
                ("assertions", k),
                (
                    f"unknown metric {assertion.path!r}{_did_you_mean(assertion.path, valid)}; "
                    "see 'Metrics' in the README for the paths"
                ),
            )


def _did_you_mean(word: str, options: object) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)  # type: ignore[call-overload]
    return f" (did you mean {close[0]!r}?)" if close else ""


__all__ = ["check_scenario", "metric_paths"]
