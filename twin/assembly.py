"""The one assembly step: a scenario (ms, degrees, names) becomes runtime objects (s, rad).

Nothing else turns scenario models into runtime objects: services, faults and the
patterns take plain settings in SI units from here, through their constructors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import simpy
from pydantic import ValidationError

from hw_adapters import ConfigError, ServoBus, open_bus
from hw_adapters.faulty import FaultInjectingBus
from servo_core.catalogue import ServoSpec, read_params, servo_spec
from servo_core.errors import TwinError
from servo_core.units import servo_range_rad
from sim_models.network import (
    ConstantLatency,
    EmpiricalLatency,
    Latency,
    LogNormalLatency,
    Network,
    NormalLatency,
    ScaledLatency,
    UniformLatency,
)
from sim_models.plant import Mount, Plant, urdf_file
from sim_models.rng import component_rng
from sim_models.robots import actuated_joints, robot_links, robot_urdf_text
from sim_models.servo.device import VirtualServo
from twin import faults as F
from twin.clock import WallClockEnvironment
from twin.control.joints import Joint
from twin.control.limits import Calibration, JointLimits
from twin.machine import Machine, ServiceGroup, Traffic
from twin.observe.runlog import RunLog
from twin.observe.trace import Tracer
from twin.patterns.breaker import BreakerConfig, Transition, WindowType
from twin.patterns.discovery import Strategy
from twin.patterns.discovery_service import Discovery, DiscoverySettings, HeartbeatHook
from twin.patterns.eventbus import DeliveryObserver, EventBus, Overflow, QoS, SubscriberConfig, TopicConfig
from twin.patterns.retry import RetryConfig
from twin.plugins import add_python_path, service_class
from twin.scenario.models import (
    BusErrors,
    CallConfig,
    Constant,
    Distribution,
    EmergencyStop,
    Empirical,
    EncoderNoise,
    Fault,
    LinkLatency,
    LinkLoss,
    LinkPartition,
    LogNormal,
    Normal,
    RegistryOutage,
    RollingUpdate,
    Scenario,
    ServiceCrash,
    ServiceHang,
    ServiceSlowdown,
    ServoConfig,
    ServoDisconnect,
    ServoFaultBase,
    ServoOverheat,
    ServoOverload,
    TopicSettings,
    Uniform,
)
from twin.services.api import MachineInfo, Service
from twin.services.calls import RETRYABLE, CallPipeline, CallPolicy, CallSettings
from twin.services.hosting import EventHub, Hosting, ReplicaContext, serve
from twin.services.messaging import MessageBus
from twin.services.replica import Replica
from twin.tasks import schedule
from twin.tolerances import link_latency_scale, robot_mass_scales, servo_with_tolerances

__all__ = [
    "BusWrapper",
    "delivery_tracer",
    "heartbeat_tracer",
    "build",
    "build_joints",
    "build_plant",
    "check_servos_present",
    "open_checked_bus",
    "latency_from",
    "servo_model",
    "servo_range_in_joint",
]

DEFAULT_CALL_TIMEOUT_S = 1.0
"""A call's timeout when neither the caller nor the scenario's calls: says otherwise."""

RELIABLE = TopicConfig(qos=QoS.AT_LEAST_ONCE, ack_timeout_s=0.02, max_deliveries=10)
"""Alarms and the e-stop must arrive: at least once, redelivered until acknowledged."""


def latency_from(config: Distribution, seed: int, name: str) -> Latency:
    """A sampler for a scenario distribution (ms in the file, s inside)."""
    rng = component_rng(seed, name)
    match config:
        case Constant():
            return ConstantLatency(rng, config.ms / 1000.0)
        case Normal():
            return NormalLatency(rng, config.mean_ms / 1000.0, config.std_ms / 1000.0)
        case LogNormal():
            return LogNormalLatency(rng, config.median_ms / 1000.0, config.sigma)
        case Uniform():
            return UniformLatency(rng, config.low_ms / 1000.0, config.high_ms / 1000.0)
        case Empirical():
            return EmpiricalLatency(rng, [v / 1000.0 for v in config.samples_ms])
    raise TypeError(config)


def servo_model(servo: ServoConfig) -> ServoSpec:
    """The servo's model: its catalogue entry, refined by its parameters file when it has one."""
    if servo.params is None:
        return servo_spec(servo.model)
    spec = read_params(servo.params)
    base = servo_spec(servo.model)
    if spec.protocol != base.protocol or spec.model_number != base.model_number:
        raise ConfigError(f"{servo.params}: refines {spec.name}, not the servo's model {servo.model}")
    return spec


def servo_range_in_joint(servo: ServoConfig) -> tuple[float, float]:
    """The servo's whole range of travel, in the joint frame (after offset and direction)."""
    cal = Calibration(servo.direction, math.radians(servo.offset_deg))
    a, b = (cal.to_joint(x) for x in servo_range_rad(servo_spec(servo.model)))
    return min(a, b), max(a, b)


def build_joints(scenario: Scenario, urdf_limits: dict[str, tuple[float, float]]) -> list[Joint]:
    joints = []
    for sc in scenario.plant.servos:
        cal = Calibration(sc.direction, math.radians(sc.offset_deg))
        spec = servo_model(sc)
        if sc.limits_deg is not None:
            lo, hi = (math.radians(x) for x in sc.limits_deg)
        else:
            lo, hi = urdf_limits[sc.joint]
            s_lo, s_hi = servo_range_in_joint(sc)
            lo, hi = max(lo, s_lo), min(hi, s_hi)
        vmax = (
            math.radians(sc.max_velocity_deg_s)
            if sc.max_velocity_deg_s is not None
            else 0.9 * spec.no_load_speed_rad_s
        )
        joints.append(Joint(sc.joint, sc.id, JointLimits(lo, hi, vmax), cal))
    return joints


def build_plant(scenario: Scenario, seed: int | None = None) -> tuple[Plant, dict[str, tuple[float, float]]]:
    """The robot and its servos, as the scenario's `tolerances:` draw them for `seed` (default:
    the scenario's own)."""
    seed = scenario.seed if seed is None else seed
    robot = scenario.plant.robot
    urdf = robot_urdf_text(robot.urdf, **robot.params)
    limits = actuated_joints(urdf)
    tolerances = scenario.tolerances

    def mount(sc: ServoConfig) -> Mount:
        spec, supply_v = servo_with_tolerances(servo_model(sc), sc, tolerances, seed)
        servo = VirtualServo(spec, sc.id, supply_v)
        return Mount(sc.joint, servo, float(sc.direction), math.radians(sc.offset_deg))

    plant = Plant(
        urdf,
        [mount(sc) for sc in scenario.plant.servos],
        dt=scenario.physics.dt_s,
        gravity=scenario.physics.gravity_m_s2,
        initial_positions={j: math.radians(d) for j, d in robot.initial_pose_deg.items()},
        solver_iterations=scenario.physics.solver_iterations,
        urdf_path=urdf_file(robot.urdf),
        mass_scale=robot_mass_scales(tolerances, seed, robot_links(urdf)),
    )
    return plant, limits


def call_settings(config: CallConfig) -> CallSettings:
    retry = None
    if config.retry is not None:
        r = config.retry
        retry = RetryConfig(
            max_attempts=r.max_attempts,
            wait_s=r.wait_ms / 1000.0,
            multiplier=r.multiplier,
            max_wait_s=float("inf") if r.max_wait_ms is None else r.max_wait_ms / 1000.0,
            randomization_factor=r.randomization,
            retry_on=RETRYABLE,
        )
    breaker = None
    if config.breaker is not None:
        b = config.breaker
        breaker = BreakerConfig(
            window_type=WindowType.COUNT_BASED if b.window == "count" else WindowType.TIME_BASED,
            window_size=b.window_size,
            minimum_calls=b.minimum_calls,
            failure_rate_threshold=b.failure_rate,
            slow_call_rate_threshold=b.slow_call_rate,
            slow_call_duration_s=b.slow_call_ms / 1000.0,
            wait_in_open_s=b.wait_in_open_ms / 1000.0,
            automatic_half_open=b.automatic_half_open,
            permitted_calls_in_half_open=b.half_open_calls,
            max_wait_in_half_open_s=b.max_wait_in_half_open_ms / 1000.0,
        )
    return CallSettings(
        caller=config.caller,
        callee=config.callee,
        timeout_s=None if config.timeout_ms is None else config.timeout_ms / 1000.0,
        retry=retry,
        breaker=breaker,
        bulkhead_max_concurrent=None if config.bulkhead is None else config.bulkhead.max_concurrent,
        bulkhead_max_wait_s=0.0 if config.bulkhead is None else config.bulkhead.max_wait_ms / 1000.0,
    )


def topic_config(t: TopicSettings) -> TopicConfig:
    return TopicConfig(
        qos=QoS(t.qos),
        ack_timeout_s=t.ack_timeout_ms / 1000.0,
        max_deliveries=t.max_deliveries,
        dead_letter_topic=t.dead_letter_topic,
        gap_timeout_s=t.gap_timeout_ms / 1000.0,
    )


def timed_fault(fault: Fault, index: int, seed: int) -> F.TimedFault:
    """The runtime form of one entry of the faults timeline."""
    action: F.Action
    match fault:
        case RollingUpdate():
            process = F.rolling_update(
                fault.service, fault.drain_timeout_ms / 1000.0, fault.startup_ms / 1000.0
            )
            return F.TimedFault(fault.at_s, fault.duration_s, process=process)
        case ServiceCrash():
            action = F.crash(fault.service, fault.replica)
        case ServiceHang():
            action = F.hang(fault.service, fault.replica)
        case ServiceSlowdown():
            action = F.slow_down(fault.service, fault.replica, fault.factor)
        case LinkPartition():
            action = F.partition(*fault.between)
        case LinkLoss():
            action = F.link_loss(*fault.between, fault.loss)
        case LinkLatency():
            action = F.link_latency(*fault.between, fault.extra_ms / 1000.0)
        case ServoOverload():
            action = F.overload(fault.servo, fault.torque_nm)
        case ServoOverheat():
            action = F.overheat(fault.servo)
        case EncoderNoise():
            rng = component_rng(seed, f"fault:{index}:encoder_noise")
            action = F.encoder_noise(fault.servo, math.radians(fault.std_deg), rng)
        case ServoDisconnect():
            action = F.disconnect(fault.servo)
        case BusErrors():
            action = F.bus_errors(fault.rate, component_rng(seed, f"fault:{index}:bus_errors"))
        case RegistryOutage():
            action = F.registry_outage()
        case EmergencyStop():
            action = F.estop()
        case _:
            raise TypeError(fault)
    return F.TimedFault(fault.at_s, fault.duration_s, action=action)


def check_servos_present(bus: ServoBus, scenario: Scenario) -> None:
    """Every servo of the scenario answers, and is the model the scenario says. ConfigError otherwise."""
    problems = []
    for sc in scenario.plant.servos:
        info = bus.ping(sc.id)
        if info is None:
            problems.append(f"servo {sc.id} ({sc.model}, joint {sc.joint}) does not answer")
        elif info.model_number != servo_spec(sc.model).model_number:
            problems.append(f"servo {sc.id} is a {info.model} (model {info.model_number}), not a {sc.model}")
    if problems:
        raise ConfigError("the bus does not match the scenario: " + "; ".join(problems))


def open_checked_bus(url: str, scenario: Scenario) -> ServoBus:
    """The bus at `url`, once every servo of the scenario has answered as the model it says
    (check_servos_present); closed again, and ConfigError, when one does not."""
    bus = open_bus(url)
    try:
        check_servos_present(bus, scenario)
    except BaseException:
        bus.close()
        raise
    return bus


def _open_servo_bus(
    scenario: Scenario, plant: Plant | None, env: simpy.Environment, bus_url: str | None
) -> ServoBus:
    if plant is not None:
        inner = open_bus(f"sim://?baud={scenario.plant.bus.baud}", plant=plant, clock=lambda: env.now)
        return FaultInjectingBus(inner)
    assert bus_url is not None
    return open_checked_bus(bus_url, scenario)


BusWrapper = Callable[[ServoBus, simpy.Environment], ServoBus]


def build(
    scenario: Scenario,
    seed: int | None = None,
    bus_url: str | None = None,
    *,
    wrap_bus: BusWrapper | None = None,
    log: RunLog | None = None,
) -> Machine:
    """Wire the scenario up. With `bus_url`, the bus owner talks to that bus on the wall clock
    (real servos or an emulator) instead of the twin's plant on virtual time. `wrap_bus`
    puts a layer of your own between the bus owner and the bus (a recorder, a shadow, a
    test double); faults and metrics still act on the bus below it."""
    seed = scenario.seed if seed is None else seed
    plant: Plant | None
    if bus_url is None:
        env: simpy.Environment = simpy.Environment()
        plant, urdf_limits = build_plant(scenario, seed)
    else:
        env = WallClockEnvironment()
        robot = scenario.plant.robot
        plant, urdf_limits = None, actuated_joints(robot_urdf_text(robot.urdf, **robot.params))
        for index, fault in enumerate(scenario.faults):
            if isinstance(fault, ServoFaultBase | BusErrors):
                raise ConfigError(
                    f"faults.{index}: a {fault.type} fault acts on the twin's servos; with --bus the servos "
                    "are real (service and link faults still apply)"
                )
    try:
        return _wire(scenario, seed, env, plant, urdf_limits, bus_url, wrap_bus, log)
    except BaseException:  # _wire closes the servo bus it opened; the plant is ours
        if plant is not None:
            plant.close()
        raise


def _wire(
    scenario: Scenario,
    seed: int,
    env: simpy.Environment,
    plant: Plant | None,
    urdf_limits: dict[str, tuple[float, float]],
    bus_url: str | None,
    wrap_bus: BusWrapper | None,
    log: RunLog | None,
) -> Machine:
    topo = scenario.topology
    joints = build_joints(scenario, urdf_limits)
    log = log if log is not None else RunLog([j.name for j in joints])
    network = Network(env, seed)
    for link in topo.links:
        a, b = link.between
        latency = latency_from(link.latency, seed, f"link:{link.name}")
        scale = link_latency_scale(scenario.tolerances, seed, link.name)
        network.add_link(a, b, latency if scale == 1.0 else ScaledLatency(latency, scale), link.loss)
    tracer = Tracer(limit=scenario.outputs.trace_limit)
    traffic = Traffic()
    messages = MessageBus(env, network, tracer)
    node_of = {svc.service_name: svc.node for svc in topo.services}

    def breaker_moved(caller: str, instance: str, transition: Transition) -> None:
        tracer.instant(
            f"breaker {transition.old.name} -> {transition.new.name}",
            caller,
            node_of[caller],
            transition.t,
            args={"callee": instance, "reason": transition.reason},
        )

    policies = {
        (c.caller, c.callee): CallPolicy(call_settings(c), env, seed, breaker_moved) for c in topo.calls
    }
    discovery = None
    if topo.discovery is not None:
        d = topo.discovery
        settings = DiscoverySettings(
            node=d.node,
            ttl_s=d.ttl_ms / 1000.0,
            heartbeat_s=d.heartbeat_ms / 1000.0,
            deregister_critical_after_s=d.deregister_critical_after_ms / 1000.0,
            refresh_s=d.refresh_ms / 1000.0,
            strategy=Strategy(d.strategy),
        )
        discovery = Discovery(env, network, settings, seed, on_heartbeat=heartbeat_tracer(tracer, traffic))
    calls = CallPipeline(messages, policies, None if discovery is None else discovery.client)
    events = EventBus(env, network.deliver, observer=delivery_tracer(tracer, messages, traffic))
    topics = {"alarms": RELIABLE, "estop": RELIABLE}
    topics.update({name: topic_config(t) for name, t in topo.topics.items()})
    queues = {
        (s.service, s.topic): SubscriberConfig(queue_size=s.queue_size, overflow=Overflow[s.overflow.upper()])
        for s in topo.subscriptions
    }
    hub = EventHub(events, topics, queues)
    info = MachineInfo(
        joints=tuple(joints),
        schedule=tuple(schedule(scenario.task)) if scenario.task is not None else (),
        on_servo_failure=scenario.plant.bus.on_servo_failure,
        recording=log,
    )
    hosting = Hosting(env, seed, messages, calls, hub, tracer, info)
    add_python_path(scenario.python_path)
    classes = {svc.service_name: service_class(svc.type, svc.class_path) for svc in topo.services}
    hosting.service_classes.update(classes)
    owner = next(
        svc.service_name
        for svc in topo.services
        if svc.servo_bus or (svc.servo_bus is None and classes[svc.service_name].wants_servo_bus)
    )
    servo_bus = _open_servo_bus(scenario, plant, env, bus_url)
    try:
        owners_bus = servo_bus if wrap_bus is None else wrap_bus(servo_bus, env)
        groups: dict[str, ServiceGroup] = {}
        hosted: list[tuple[ReplicaContext[Any], Service[Any]]] = []
        for svc in topo.services:
            name, cls = svc.service_name, classes[svc.service_name]
            try:
                params = cls.Params.model_validate(svc.params)
            except ValidationError as exc:
                raise ConfigError(f"service {name}: {exc}") from None
            group = ServiceGroup(name, cls, [], [])
            for k in range(svc.replicas):
                replica = Replica(
                    env, name, k, svc.node, latency_from(svc.processing, seed, f"service:{name}#{k}")
                )
                messages.add(replica)
                ctx: ReplicaContext[Any] = ReplicaContext(
                    hosting, replica, params, owners_bus if name == owner else None, DEFAULT_CALL_TIMEOUT_S
                )
                obj: Service[Any] = cls(ctx)
                hosted.append((ctx, obj))
                group.replicas.append(replica)
                group.objects.append(obj)
            groups[name] = group
        if discovery is not None:
            discovery.start([r for g in groups.values() for r in g.replicas])
        for ctx, obj in hosted:
            env.process(serve(ctx, obj, hosting))
            obj.start()
    except BaseException:
        servo_bus.close()
        raise
    machine = Machine(
        name=scenario.name,
        seed=seed,
        duration_s=scenario.duration,
        env=env,
        plant=plant,
        network=network,
        joints=joints,
        tracer=tracer,
        messages=messages,
        calls=calls,
        policies=policies,
        events=events,
        hosting=hosting,
        services=groups,
        servo_bus=servo_bus,
        bus_owner=owner,
        discovery_service=discovery,
        traffic=traffic,
        log=log,
    )
    F.schedule_faults(machine, [timed_fault(f, k, seed) for k, f in enumerate(scenario.faults)])
    return machine


def heartbeat_tracer(tracer: Tracer, traffic: Traffic | None = None) -> HeartbeatHook:
    """Heartbeats to the registry drawn in the trace as messages (and counted in `traffic`)."""

    def traced(
        instance: str, node: str, registry_node: str, sent: float, arrived: float | None, outcome: str
    ) -> None:
        service = instance.rsplit("#", 1)[0]
        tracer.message("heartbeat", service, node, "registry", registry_node, sent, arrived, outcome=outcome)
        if traffic is not None:
            traffic.count(service, "registry", "heartbeat", failed=outcome != "ok")

    return traced


_DELIVERY_OUTCOMES = {"ok": "ok", "lost": "lost", "dropped": "dropped", "dead_letter": "expired"}
"""Event-bus delivery outcomes drawn in the trace (duplicates and late copies are not traffic to show)."""


def delivery_tracer(tracer: Tracer, messages: MessageBus, traffic: Traffic | None = None) -> DeliveryObserver:
    """Event-bus deliveries drawn in the trace as messages from publisher to subscriber (and
    counted in `traffic`)."""

    nodes: dict[str, str] = {}  # a replica stays on its node: looked up once per name

    def node(name: str) -> str:
        found = nodes.get(name)
        if found is None:
            try:
                found = nodes[name] = messages.replica(name.split(":", 1)[0]).node
            except TwinError:
                return ""  # not (yet) a replica: asked again next time
        return found

    def traced(
        topic: str, publisher: str, subscriber: str, sent_s: float, arrived_s: float | None, outcome: str
    ) -> None:
        shown = _DELIVERY_OUTCOMES.get(outcome)
        if shown is None or (shown == "ok" and arrived_s is None):
            return
        src, dst = publisher.rsplit("#", 1)[0], subscriber.split(":", 1)[0].rsplit("#", 1)[0]
        tracer.message(topic, src, node(publisher), dst, node(subscriber), sent_s, arrived_s, outcome=shown)
        if traffic is not None:
            traffic.count(src, dst, f"event:{topic}", failed=shown != "ok")

    return traced
