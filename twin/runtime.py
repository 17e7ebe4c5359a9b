"""Wire a scenario into one SimPy environment and run it.

One clock: the environment's. The plant is advanced lazily to `env.now` by
the bus before every access; services exchange messages over the simulated
network; nothing here reads the wall clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import simpy

from hw_adapters import ConfigError, ServoBus, open_bus
from sim_models.network import (
    ConstantLatency,
    EmpiricalLatency,
    Latency,
    LogNormalLatency,
    Network,
    NormalLatency,
    UniformLatency,
)
from sim_models.plant import Mount, Plant, urdf_file
from sim_models.rng import component_rng
from sim_models.robots import actuated_joints, robot_urdf_text
from sim_models.servo.catalogue import servo_spec
from sim_models.servo.device import VirtualServo
from twin.clock import WallClockEnvironment
from twin.control.joints import Joint
from twin.control.limits import Calibration, JointLimits
from twin.observe.trace import Tracer
from twin.patterns.eventbus import EventBus, Overflow, QoS, SubscriberConfig, TopicConfig
from twin.patterns.rate_limiter import RateLimiter
from twin.scenario.models import (
    Constant,
    Distribution,
    DriverService,
    Empirical,
    GatewayService,
    LogNormal,
    Normal,
    OperatorService,
    PlannerService,
    Scenario,
    ServoConfig,
    TelemetryService,
    TopicSettings,
    Uniform,
)
from twin.services.base import Bus, Instance, Service
from twin.services.calls import build_policies
from twin.services.driver import Driver
from twin.services.gateway import Gateway
from twin.services.operator import Operator
from twin.services.planner import Planner
from twin.services.registry import Discovery
from twin.services.telemetry import TelemetryRecorder
from twin.tasks import schedule

SERVO_RANGE = (-math.pi, math.pi * 2047 / 2048)  # 0..4095 ticks around the centre


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


def servo_range_in_joint(cal: Calibration) -> tuple[float, float]:
    a, b = (cal.to_joint(x) for x in SERVO_RANGE)
    return min(a, b), max(a, b)


def build_joints(scenario: Scenario, urdf_limits: dict[str, tuple[float, float]]) -> list[Joint]:
    joints = []
    for sc in scenario.plant.servos:
        cal = Calibration(sc.direction, math.radians(sc.offset_deg))
        spec = servo_spec(sc.model)
        if sc.limits_deg is not None:
            lo, hi = (math.radians(x) for x in sc.limits_deg)
        else:
            lo, hi = urdf_limits[sc.joint]
            s_lo, s_hi = servo_range_in_joint(cal)
            lo, hi = max(lo, s_lo), min(hi, s_hi)
        vmax = (
            math.radians(sc.max_velocity_deg_s)
            if sc.max_velocity_deg_s is not None
            else 0.9 * spec.no_load_speed_rad_s
        )
        joints.append(Joint(sc.joint, sc.id, JointLimits(lo, hi, vmax), cal))
    return joints


def build_plant(scenario: Scenario) -> tuple[Plant, dict[str, tuple[float, float]]]:
    robot = scenario.plant.robot
    urdf = robot_urdf_text(robot.urdf, **robot.params)
    limits = actuated_joints(urdf)

    def mount(sc: ServoConfig) -> Mount:
        servo = VirtualServo(servo_spec(sc.model), sc.id, sc.supply_v)
        return Mount(sc.joint, servo, float(sc.direction), math.radians(sc.offset_deg))

    plant = Plant(
        urdf,
        [mount(sc) for sc in scenario.plant.servos],
        dt=scenario.physics.dt_s,
        gravity=scenario.physics.gravity_m_s2,
        initial_positions={j: math.radians(d) for j, d in robot.initial_pose_deg.items()},
        solver_iterations=scenario.physics.solver_iterations,
        urdf_path=urdf_file(robot.urdf),
    )
    return plant, limits


@dataclass
class Machine:
    """A scenario wired up and ready to run."""

    scenario: Scenario
    seed: int
    env: simpy.Environment
    plant: Plant | None  # None when the servos are real (a bus URL was given)
    network: Network
    joints: list[Joint]
    operator: Operator
    gateway: Gateway
    planner: Planner
    driver: Driver
    telemetry: TelemetryRecorder
    instances: list[Instance] = field(default_factory=list)
    faults_injected: int = 0
    updates_completed: int = 0

    @property
    def bus(self) -> Bus:
        """The service messaging (calls, patterns, discovery, trace)."""
        return self.driver.bus

    def close(self) -> None:
        try:
            if self.driver.servo_bus is not None:
                self.driver.servo_bus.close()
        finally:
            if self.plant is not None:
                self.plant.close()


def build(scenario: Scenario, seed: int | None = None, bus_url: str | None = None) -> Machine:
    """Wire the scenario up. With `bus_url`, the driver talks to that bus on the wall clock
    (real servos or an emulator) instead of the twin's plant on virtual time."""
    seed = scenario.seed if seed is None else seed
    plant: Plant | None
    if bus_url is None:
        env: simpy.Environment = simpy.Environment()
        plant, urdf_limits = build_plant(scenario)
    else:
        env = WallClockEnvironment()
        robot = scenario.plant.robot
        plant, urdf_limits = None, actuated_joints(robot_urdf_text(robot.urdf, **robot.params))
    services: dict[str, Any] = {}
    try:
        joints = build_joints(scenario, urdf_limits)
        network = Network(env, seed)
        for link in scenario.topology.links:
            a, b = link.between
            network.add_link(a, b, latency_from(link.latency, seed, f"link:{link.name}"), link.loss)
        messaging = Bus(env, network)
        tracer = messaging.tracer = Tracer()
        placement = {svc.type: svc.node for svc in scenario.topology.services}

        def breaker_moved(call: Any, instance: str, transition: Any) -> None:
            tracer.instant(
                f"breaker {transition.old.name} -> {transition.new.name}",
                call.caller,
                placement[call.caller],
                transition.t,
                args={"callee": instance, "reason": transition.reason},
            )

        messaging.policies = build_policies(scenario.topology.calls, env, seed, breaker_moved)
        context = _Context(scenario, messaging, joints, plant, env, bus_url)
        instances = []
        for cfg in scenario.topology.services:
            service = SERVICE_BUILDERS[type(cfg)](cfg, context)
            for k in range(cfg.replicas):
                inst = Instance(
                    env,
                    cfg.type,
                    k,
                    cfg.node,
                    latency_from(cfg.processing, seed, f"service:{cfg.type}#{k}"),
                )
                messaging.add(inst)
                service.replicas.append(inst)
                instances.append(inst)
            services[cfg.type] = service
        _wire_events(scenario, env, network, services)
        if scenario.topology.discovery is not None:
            messaging.discovery = Discovery(env, network, scenario.topology.discovery, seed)
            messaging.discovery.start(instances)
    except BaseException:
        for service in services.values():
            if isinstance(service, Driver) and service.servo_bus is not None:
                service.servo_bus.close()
        if plant is not None:
            plant.close()
        raise
    machine = Machine(
        scenario,
        seed,
        env,
        plant,
        network,
        joints,
        services["operator"],
        services["gateway"],
        services["planner"],
        services["driver"],
        services["telemetry"],
        instances,
    )
    for service in services.values():
        service.start()
    from twin.faults import schedule_faults  # faults import the runtime's Machine

    schedule_faults(machine)
    return machine


def _wire_events(scenario: Scenario, env: simpy.Environment, network: Network, services: dict) -> None:
    """Joint states travel on the event bus from the driver to every telemetry replica."""
    events = EventBus(env, network.deliver)
    t = scenario.topology.topics.get("joint_states", TopicSettings())
    events.topic(
        "joint_states",
        TopicConfig(
            qos=QoS(t.qos),
            ack_timeout_s=t.ack_timeout_ms / 1000.0,
            max_deliveries=t.max_deliveries,
            dead_letter_topic=t.dead_letter_topic,
            gap_timeout_s=t.gap_timeout_ms / 1000.0,
        ),
    )
    if t.dead_letter_topic is not None:
        events.topic(t.dead_letter_topic)
    sub_cfg = next((s for s in scenario.topology.subscriptions if s.service == "telemetry"), None)
    config = (
        SubscriberConfig()
        if sub_cfg is None
        else SubscriberConfig(queue_size=sub_cfg.queue_size, overflow=Overflow[sub_cfg.overflow.upper()])
    )
    telemetry = services["telemetry"]
    telemetry.qos = QoS(t.qos)
    telemetry.subscriptions = [
        events.subscribe("joint_states", inst.name, inst.node, config) for inst in telemetry.replicas
    ]
    # Alarms and the e-stop must arrive: at least once, redelivered until acknowledged.
    reliable = TopicConfig(qos=QoS.AT_LEAST_ONCE, ack_timeout_s=0.02, max_deliveries=10)
    events.topic("alarms", reliable)
    events.topic("estop", reliable)
    telemetry.alarm_subscriptions = [
        events.subscribe("alarms", f"{inst.name}:alarms", inst.node) for inst in telemetry.replicas
    ]
    driver = services["driver"]
    driver.events = events
    driver.estop_subscription = events.subscribe("estop", "driver:estop", driver.replicas[0].node)
    services["operator"].events = events


@dataclass(frozen=True)
class _Context:
    """What a service builder may need from the machine being built."""

    scenario: Scenario
    bus: Bus
    joints: list[Joint]
    plant: Plant | None
    env: simpy.Environment
    bus_url: str | None


def _operator(cfg: OperatorService, ctx: _Context) -> Operator:
    return Operator(
        ctx.bus,
        schedule=schedule(ctx.scenario.task),
        timeout_s=cfg.request_timeout_ms / 1000.0,
        token=cfg.token,
    )


def _gateway(cfg: GatewayService, ctx: _Context) -> Gateway:
    limiter = None
    if cfg.rate_limit is not None:
        limiter = RateLimiter(
            ctx.env, cfg.rate_limit.limit, cfg.rate_limit.period_ms / 1000.0, name="gateway"
        )
    return Gateway(
        ctx.bus, timeout_s=cfg.request_timeout_ms / 1000.0, clients=dict(cfg.clients), limiter=limiter
    )


def _planner(cfg: PlannerService, ctx: _Context) -> Planner:
    return Planner(ctx.bus, joints=ctx.joints, profile=cfg.profile, timeout_s=cfg.request_timeout_ms / 1000.0)


def _driver(cfg: DriverService, ctx: _Context) -> Driver:
    env = ctx.env
    if ctx.plant is not None:
        url = f"sim://?baud={ctx.scenario.plant.bus.baud}"
        servo_bus = open_bus(url, plant=ctx.plant, clock=lambda: env.now)
    else:
        assert ctx.bus_url is not None
        servo_bus = open_bus(ctx.bus_url)
        try:
            check_servos_present(servo_bus, ctx.scenario)
        except BaseException:
            servo_bus.close()
            raise
    return Driver(
        ctx.bus,
        joints=ctx.joints,
        servo_bus=servo_bus,
        period_s=1.0 / cfg.rate_hz,
        failure_policy=ctx.scenario.plant.bus.on_servo_failure,
    )


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


def _telemetry(cfg: TelemetryService, ctx: _Context) -> TelemetryRecorder:
    return TelemetryRecorder(ctx.bus, joint_names=[j.name for j in ctx.joints])


SERVICE_BUILDERS: dict[type, Callable[[Any, _Context], Service]] = {
    OperatorService: _operator,
    GatewayService: _gateway,
    PlannerService: _planner,
    DriverService: _driver,
    TelemetryService: _telemetry,
}
