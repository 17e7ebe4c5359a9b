"""Cross-field checks of a scenario: what no single field can know alone.

Each problem is (field path, message); the loader turns paths into file lines.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from servo_core.errors import ConfigError
from servo_core.plugins import PluginError
from sim_models.plant import check_loadable, urdf_file
from sim_models.robots import actuated_joints, robot_urdf_text
from sim_models.servo.catalogue import catalogue
from twin.assembly import build_joints, servo_model, servo_range_in_joint
from twin.control.joints import Joint
from twin.control.limits import JointLimits
from twin.observe.metrics import (
    RESERVED_SECTIONS,
    breaker_name,
    build_metrics,
    empty_run,
    flatten,
    numeric_paths,
)
from twin.plugins import add_python_path, service_class
from twin.scenario.budget import check_work
from twin.scenario.models import (
    EmergencyStop,
    LinkFault,
    PickAndPlaceTask,
    RegistryOutage,
    RollingUpdate,
    Scenario,
    ServiceFault,
    ServoConfig,
    ServoFaultBase,
    SineSweepTask,
    WaypointsTask,
)
from twin.services.api import Service
from twin.services.metrics import empty_metrics

Path = tuple[str | int, ...]
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
Problem = tuple[Path, str]

# Who talks to whom in the reference topology, by service type (both directions carry traffic).
CONVERSATIONS = (
    ("operator", "gateway"),
    ("gateway", "planner"),
    ("planner", "driver"),
    ("driver", "telemetry"),
)


def check_scenario(s: Scenario) -> list[Problem]:
    problems = list(_timing(s))
    problems += check_work(s)
    problems += _services(s)
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
    names = {svc.service_name for svc in topo.services}
    for k, call in enumerate(topo.calls):
        pair = (call.caller, call.callee)
        for key, end in (("from", call.caller), ("to", call.callee)):
            if end not in names:
                yield (
                    ("topology", "calls", k, key),
                    f"no service named {end!r}; services: {', '.join(sorted(names))}",
                )
        if call.caller == call.callee:
            yield ("topology", "calls", k), f"{call.caller} calls itself"
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
    replicas = {svc.service_name: svc.replicas for svc in s.topology.services}
    types = {svc.service_name: svc.type for svc in s.topology.services}
    owner = _bus_owner(s)
    links = {frozenset(link.between) for link in s.topology.links}
    ids = {servo.id for servo in s.plant.servos}
    for k, fault in enumerate(s.faults):
        at = ("faults", k)
        if fault.at_s >= s.duration:
            yield at + ("at_s",), f"starts at {fault.at_s:g} s, after the run ends ({s.duration:g} s)"
        if isinstance(fault, ServiceFault):
            if fault.service not in replicas:
                yield (
                    at + ("service",),
                    f"no service named {fault.service!r}; services: {', '.join(sorted(replicas))}",
                )
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
            where = {svc.type: svc.node for svc in s.topology.services if svc.type is not None}
            op = where.get("operator")
            drv = next((svc.node for svc in s.topology.services if svc.service_name == owner), None)
            if op is None:
                yield (
                    at + ("type",),
                    "an e-stop is pressed by the operator: the scenario has no operator service",
                )
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
        if isinstance(fault, RollingUpdate):
            if fault.service not in replicas:
                yield (
                    at + ("service",),
                    f"no service named {fault.service!r}; services: {', '.join(sorted(replicas))}",
                )
            elif fault.service == owner or types.get(fault.service) == "operator":
                yield at + ("service",), f"{fault.service} cannot be updated while the machine runs"
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
            if servo.params is not None:
                try:
                    servo_model(servo)
                except ConfigError as exc:
                    yield at + ("params",), str(exc)
        if servo.limits_deg is not None and servo.joint in urdf_joints and servo.model in known:
            yield from _limits(servo.limits_deg, urdf_joints[servo.joint], servo, at)
    if len(protocols) > 1:
        yield ("plant", "servos"), "one bus cannot mix Dynamixel and Feetech servos"
    for joint in robot.initial_pose_deg:
        if joint not in urdf_joints:
            yield ("plant", "robot", "initial_pose_deg", joint), f"the robot has no joint {joint!r}"


def _limits(
    limits_deg: tuple[float, float], urdf: tuple[float, float], servo: ServoConfig, at: Path
) -> Iterator[Problem]:
    lo, hi = (math.radians(x) for x in limits_deg)
    s_lo, s_hi = servo_range_in_joint(servo)
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
        held = by_name.get(name)
        if held is not None and not held.limits.contains(math.radians(deg)):
            yield (
                ("plant", "robot", "initial_pose_deg", name),
                (f"{deg:g}° is outside joint {name}'s limits {_degrees(held.limits)}"),
            )


def _degrees(lim: JointLimits) -> str:
    return f"[{math.degrees(lim.lower):.1f}, {math.degrees(lim.upper):.1f}]°"


def _joints(s: Scenario) -> list[Joint]:
    robot = s.plant.robot
    return build_joints(s, actuated_joints(robot_urdf_text(robot.urdf, **robot.params)))


def _topology(s: Scenario) -> Iterator[Problem]:
    topo = s.topology
    nodes: set[str] = set()
    for k, node in enumerate(topo.nodes):
        if node.name in nodes:
            yield ("topology", "nodes", k, "name"), f"duplicate node {node.name!r}"
        nodes.add(node.name)
    placed: dict[str, str] = {}  # service name -> node
    by_type: dict[str, str] = {}  # built-in type -> node, for the reference conversations
    for k, svc in enumerate(topo.services):
        name = svc.service_name
        if name in placed:
            yield (
                ("topology", "services", k, "name" if svc.name else "type"),
                f"a second service named {name!r} (use replicas:, or give it another name:)",
            )
        placed.setdefault(name, svc.node)
        if svc.type is not None:
            by_type.setdefault(svc.type, svc.node)
        if name in RESERVED_SECTIONS:
            yield (
                ("topology", "services", k, "name" if svc.name else "type"),
                f"{name!r} is a section of metrics.json; give the service another name:",
            )
        if svc.node not in nodes:
            yield (
                ("topology", "services", k, "node"),
                f"unknown node {svc.node!r}; nodes: {', '.join(sorted(nodes))}",
            )
    seen_queues: set[tuple[str, str]] = set()
    for k, sub in enumerate(topo.subscriptions):
        if sub.service not in placed:
            yield (
                ("topology", "subscriptions", k, "service"),
                f"no service named {sub.service!r}; services: {', '.join(sorted(placed))}",
            )
        if (sub.service, sub.topic) in seen_queues:
            yield ("topology", "subscriptions", k), f"a second entry for {sub.service} on {sub.topic}"
        seen_queues.add((sub.service, sub.topic))
    for topic, settings in topo.topics.items():
        if settings.dead_letter_topic == topic:
            yield (
                ("topology", "topics", topic, "dead_letter_topic"),
                "a topic cannot be its own dead-letter topic",
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
    conversations = [(by_type.get(x), by_type.get(y), x, y) for x, y in CONVERSATIONS]
    conversations += [(placed.get(c.caller), placed.get(c.callee), c.caller, c.callee) for c in topo.calls]
    for nx, ny, x, y in conversations:
        if nx and ny and nx != ny and frozenset((nx, ny)) not in linked and nx in nodes and ny in nodes:
            yield (
                ("topology", "links"),
                f"{x} on {nx!r} talks to {y} on {ny!r}, but no link joins those nodes",
            )


def _task(s: Scenario, joints: list[Joint]) -> Iterator[Problem]:
    task = s.task
    if task is None:
        return
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


def _empty_metrics(s: Scenario, joint_names: list[str]) -> dict[str, Any]:
    links = sorted({link.name for link in s.topology.links})
    ids = [servo.id for servo in s.plant.servos]
    replicas = {svc.service_name: svc.replicas for svc in s.topology.services}
    breakers = [
        breaker_name(c.caller, f"{c.callee}#{k}")
        for c in s.topology.calls
        if c.breaker is not None
        for k in range(replicas.get(c.callee, 0))
    ]
    own: dict[str, dict[str, Any]] = {}
    for svc in s.topology.services:
        try:
            cls = service_class(svc.type, svc.class_path)
        except ConfigError:
            continue  # reported by _services
        own[svc.service_name] = empty_metrics(cls)
    calls = [(c.caller, c.callee) for c in s.topology.calls]
    run = empty_run(s.name, joint_names, links, ids, sorted(replicas), breakers, own, calls)
    return build_metrics(run)


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


def _bus_owner(s: Scenario) -> str | None:
    """The service the scenario gives the servo bus to (None when none or unclear)."""
    owners = []
    for svc in s.topology.services:
        try:
            cls = service_class(svc.type, svc.class_path)
        except ConfigError:
            continue
        if svc.servo_bus or (svc.servo_bus is None and cls.wants_servo_bus):
            owners.append(svc.service_name)
    return owners[0] if len(owners) == 1 else None


def _services(s: Scenario) -> Iterator[Problem]:
    """Each service's class resolves, its parameters fit its model, one service owns the bus."""
    add_python_path(s.python_path)
    classes: dict[str, type[Service[Any]]] = {}
    entries = []
    for k, svc in enumerate(s.topology.services):
        at: Path = ("topology", "services", k)
        key = "class" if svc.class_path is not None else "type"
        try:
            cls = service_class(svc.type, svc.class_path)
        except PluginError as exc:
            for line in exc.problems:
                yield at + (key,), line
            continue
        except ConfigError as exc:
            yield at + (key,), str(exc)
            continue
        classes.setdefault(svc.service_name, cls)
        try:
            params = cls.Params.model_validate(svc.params)
        except ValidationError as exc:
            for error in exc.errors():
                loc = tuple(x for x in error["loc"] if x != "__root__")
                yield at + loc, _error_text(error)
            continue
        entries.append((at, svc, cls, params))
    owners = [
        (at, svc)
        for at, svc, cls, _ in entries
        if svc.servo_bus or (svc.servo_bus is None and cls.wants_servo_bus)
    ]
    if len(entries) == len(s.topology.services):
        if not owners:
            yield (
                ("topology", "services"),
                "no service has the servo bus: add a driver, or servo_bus: true on one",
            )
        for at, _ in owners[1:]:
            yield (
                at + ("servo_bus",),
                f"{owners[0][1].service_name} already has the servo bus; one service owns it",
            )
    for at, svc in owners[:1]:
        if svc.replicas != 1:
            yield at + ("replicas",), f"{svc.service_name} owns the servo bus: it has exactly one replica"
    for at, _, cls, params in entries:
        for path, message in cls.check_topology(params, classes):
            yield at + path, message


def _error_text(error: Any) -> str:
    text = str(error.get("msg", "invalid"))
    if error.get("type") == "extra_forbidden":
        return "unknown key for this service type"
    return text


def scenario_notes(s: Scenario) -> list[Problem]:
    """What runs but deserves a warning: servos supplied outside their rated voltage (the
    servo raises its input-voltage alarm and keeps going, as the real one does)."""
    known = catalogue()
    notes: list[Problem] = []
    for k, servo in enumerate(s.plant.servos):
        spec = known.get(servo.model)
        if spec is None or servo.supply_v is None:
            continue
        if not spec.min_voltage_v <= servo.supply_v <= spec.max_voltage_v:
            notes.append(
                (
                    ("plant", "servos", k, "supply_v"),
                    f"{servo.supply_v:g} V is outside the {servo.model} operating range "
                    f"{spec.min_voltage_v:g}-{spec.max_voltage_v:g} V: the servo raises its input-voltage "
                    "alarm and runs on",
                )
            )
    return notes


def _did_you_mean(word: str, options: object) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)  # type: ignore[call-overload]
    return f" (did you mean {close[0]!r}?)" if close else ""


__all__ = ["check_scenario", "metric_paths", "scenario_notes"]
