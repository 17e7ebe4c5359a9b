"""Pydantic models of a scenario file.

Every model forbids unknown keys; unions are discriminated by `type:`; units
are in the field names (`_s`, `_ms`, `_deg`, `_hz`, `_v`). Angles in scenario
files are degrees (what people write); the runtime converts to rad.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from twin.scenario.assertions import Assertion

__all__ = [
    "BreakerSettings",
    "BulkheadSettings",
    "BusConfig",
    "BusErrors",
    "CallConfig",
    "Constant",
    "default_topology",
    "DiscoveryConfig",
    "Distribution",
    "EmergencyStop",
    "Empirical",
    "EncoderNoise",
    "Fault",
    "FaultBase",
    "Id",
    "LinkConfig",
    "LinkFault",
    "LinkLatency",
    "LinkLoss",
    "LinkPartition",
    "LogNormal",
    "Model",
    "Name",
    "NodeConfig",
    "NonNegS",
    "Normal",
    "OutputsConfig",
    "PhysicsConfig",
    "PickAndPlaceTask",
    "PlantConfig",
    "Pose",
    "PositiveS",
    "RegistryOutage",
    "RenderConfig",
    "RetrySettings",
    "RobotConfig",
    "RollingUpdate",
    "Scenario",
    "SERVICE_TYPES",
    "ServiceConfig",
    "ServiceCrash",
    "ServiceFault",
    "ServiceHang",
    "ServiceSlowdown",
    "ServoConfig",
    "ServoDisconnect",
    "ServoFaultBase",
    "ServoOverheat",
    "ServoOverload",
    "SineJoint",
    "SineSweepTask",
    "SubscriptionSettings",
    "Task",
    "TopicSettings",
    "TopologyConfig",
    "Uniform",
    "WaypointsTask",
    "WaypointStep",
    "ZERO",
]

Id = Annotated[int, Field(ge=0, le=252, description="servo bus id")]
PositiveS = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegS = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# -- distributions ---------------------------------------------------------------------
class Constant(Model):
    type: Literal["constant"]
    ms: NonNegS = Field(description="fixed delay in ms")


class Normal(Model):
    type: Literal["normal"]
    mean_ms: NonNegS
    std_ms: NonNegS = Field(description="standard deviation; draws are truncated at 0")


class LogNormal(Model):
    type: Literal["lognormal"]
    median_ms: PositiveS
    sigma: Annotated[float, Field(ge=0, le=3, description="shape: std of the underlying normal")]


class Uniform(Model):
    type: Literal["uniform"]
    low_ms: NonNegS
    high_ms: NonNegS

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high_ms < self.low_ms:
            raise ValueError("high_ms must be >= low_ms")
        return self


class Empirical(Model):
    type: Literal["empirical"]
    samples_ms: list[NonNegS] = Field(min_length=1, description="measured delays, drawn uniformly")


Distribution = Annotated[Constant | Normal | LogNormal | Uniform | Empirical, Field(discriminator="type")]
ZERO = Constant(type="constant", ms=0.0)


# -- plant -------------------------------------------------------------------------------
class PhysicsConfig(Model):
    dt_s: Annotated[float, Field(gt=0, le=0.01)] = 0.001
    gravity_m_s2: float = -9.81
    solver_iterations: Annotated[int, Field(ge=1, le=500)] = 50


class RobotConfig(Model):
    urdf: str = Field(
        description="built-in robot (pan_tilt, arm6, pendulum) or a path to a .urdf file, "
        "relative to the scenario file"
    )
    params: dict[str, float] = Field(default_factory=dict, description="pendulum: length_m, mass_kg")
    initial_pose_deg: dict[str, float] = Field(default_factory=dict)

    @field_validator("urdf")
    @classmethod
    def _relative_to_the_file(cls, value: str, info: ValidationInfo) -> str:
        looks_like_path = "/" in value or "\\" in value or value.endswith(".urdf")
        base = (info.context or {}).get("base_dir")
        if looks_like_path and base and not os.path.isabs(value):
            return os.path.normpath(os.path.join(base, value))
        return value


class ServoConfig(Model):
    id: Id
    model: str = Field(description="catalogue model, e.g. xl430-w250, sts3215")
    joint: str
    limits_deg: tuple[float, float] | None = Field(
        default=None, description="joint position limits (lower, upper); default: the robot's"
    )
    max_velocity_deg_s: Annotated[float, Field(gt=0)] | None = None
    offset_deg: float = Field(default=0.0, description="servo angle = direction * joint + offset")
    direction: Literal[1, -1] = 1
    supply_v: Annotated[float, Field(gt=0, le=30)] | None = None
    params: str | None = Field(
        default=None,
        description="a `twin identify` parameters file refining the model (relative to the scenario file)",
    )

    @field_validator("params")
    @classmethod
    def _params_relative_to_the_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        base = (info.context or {}).get("base_dir")
        if value is not None and base and not os.path.isabs(value):
            return os.path.normpath(os.path.join(base, value))
        return value

    @field_validator("limits_deg", mode="before")
    @classmethod
    def _two_numbers(cls, v: object) -> object:
        if v is not None and not (isinstance(v, list | tuple) and len(v) == 2):
            raise ValueError("limits_deg must be two numbers [low, high] in degrees")
        return v

    @field_validator("limits_deg")
    @classmethod
    def _ordered(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and v[0] >= v[1]:
            raise ValueError("lower limit must be below upper limit")
        return v


class BusConfig(Model):
    baud: Annotated[int, Field(ge=9600, le=4_500_000)] = 1_000_000
    on_servo_failure: Literal["safe_stop", "hold_others", "torque_off"] = Field(
        default="safe_stop",
        description="when the bus gives up on a servo: stop all motion and hold (safe_stop), carry on "
        "without it (hold_others), or torque off everywhere (torque_off)",
    )


class PlantConfig(Model):
    robot: RobotConfig
    servos: list[ServoConfig] = Field(min_length=1)
    bus: BusConfig = BusConfig()


# -- topology ----------------------------------------------------------------------------
class NodeConfig(Model):
    name: Name


_SECRET_KEY = re.compile(r"token|secret|password|clients", re.IGNORECASE)


class ServiceConfig(Model):
    """One service of the topology: a registered `type` or a `class: "package.module:Name"`.

    The service's own parameters sit beside these keys; they are validated against the
    service's parameter model (`twin services` lists each type's parameters).
    """

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False, populate_by_name=True)

    type: str | None = Field(default=None, description="a registered service type, e.g. planner")
    class_path: str | None = Field(
        default=None, alias="class", description="instead of type: 'package.module:Name' of a Service class"
    )
    name: Name | None = Field(default=None, description="the service's name (default: its type)")
    node: Name
    replicas: Annotated[int, Field(ge=1, le=16)] = 1
    processing: Distribution = Field(default=ZERO, description="time to handle one message")
    servo_bus: bool | None = Field(
        default=None, description="give this service the servo bus (default: if its type asks for it)"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> ServiceConfig:
        if (self.type is None) == (self.class_path is None):
            raise ValueError(
                "give exactly one of type: (a registered service) or class: 'package.module:Name'"
            )
        if self.name is None and self.type is None:
            raise ValueError("a service given by class: needs a name:")
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, object]]:
        for key, value in super().__repr_args__():
            yield key, ("**********" if key is not None and _SECRET_KEY.search(key) else value)

    @property
    def service_name(self) -> str:
        return self.name or self.type or ""

    @property
    def params(self) -> dict[str, object]:
        """The service's own keys, as written."""
        return dict(self.model_extra or {})


class LinkConfig(Model):
    between: tuple[Name, Name]
    latency: Distribution = ZERO
    loss: Annotated[float, Field(ge=0, le=1)] = 0.0

    @property
    def name(self) -> str:
        a, b = sorted(self.between)
        return f"{a}--{b}"


class RetrySettings(Model):
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    wait_ms: NonNegS = 50.0
    multiplier: Annotated[float, Field(ge=1, le=10)] = 1.0
    max_wait_ms: PositiveS | None = None
    randomization: Annotated[float, Field(ge=0, lt=1)] = 0.0


class BreakerSettings(Model):
    window: Literal["count", "time"] = "count"
    window_size: Annotated[int, Field(ge=1, le=10_000)] = 20
    minimum_calls: Annotated[int, Field(ge=1, le=10_000)] = 10
    failure_rate: Annotated[float, Field(gt=0, le=100)] = 50.0
    slow_call_rate: Annotated[float, Field(gt=0, le=100)] = 100.0
    slow_call_ms: PositiveS = 60_000.0
    wait_in_open_ms: PositiveS = 1000.0
    automatic_half_open: bool = True
    half_open_calls: Annotated[int, Field(ge=1, le=1000)] = 3
    max_wait_in_half_open_ms: NonNegS = 0.0


class BulkheadSettings(Model):
    max_concurrent: Annotated[int, Field(ge=1, le=10_000)]
    max_wait_ms: NonNegS = 0.0


class CallConfig(Model):
    """How one service calls another: patterns composed as retry(breaker(bulkhead(timeout(call))))."""

    caller: Name = Field(alias="from")
    callee: Name = Field(alias="to")
    timeout_ms: PositiveS | None = Field(default=None, description="default: the caller's request timeout")
    retry: RetrySettings | None = None
    breaker: BreakerSettings | None = Field(default=None, description="one breaker per callee replica")
    bulkhead: BulkheadSettings | None = None


class DiscoveryConfig(Model):
    node: Name = Field(description="where the registry runs")
    ttl_ms: PositiveS = 1000.0
    heartbeat_ms: PositiveS = 250.0
    deregister_critical_after_ms: NonNegS = 2000.0
    refresh_ms: PositiveS = Field(default=500.0, description="how often clients refresh their cached view")
    strategy: Literal["round_robin", "random", "least_outstanding"] = "round_robin"


class TopicSettings(Model):
    qos: Literal[0, 1] = 0
    ack_timeout_ms: PositiveS = 50.0
    max_deliveries: Annotated[int, Field(ge=1, le=100)] = 3
    dead_letter_topic: Name | None = None
    gap_timeout_ms: PositiveS = 100.0


class SubscriptionSettings(Model):
    service: Name = Field(description="who consumes the topic")
    topic: Name = "joint_states"
    queue_size: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    overflow: Literal["drop_oldest", "drop_newest", "block"] = "drop_oldest"


class TopologyConfig(Model):
    nodes: list[NodeConfig] = Field(min_length=1)
    services: list[ServiceConfig] = Field(min_length=1)
    links: list[LinkConfig] = Field(default_factory=list)
    calls: list[CallConfig] = Field(default_factory=list, description="resilience patterns per call")
    discovery: DiscoveryConfig | None = Field(default=None, description="route through a registry")
    topics: dict[Name, TopicSettings] = Field(
        default_factory=dict, description="event bus topics (QoS 0 unless set; alarms and estop are QoS 1)"
    )
    subscriptions: list[SubscriptionSettings] = Field(
        default_factory=list, description="subscriber queues (default: 1000 events, drop_oldest)"
    )


def default_topology() -> TopologyConfig:
    """Every service on one node: no network between them."""
    return TopologyConfig.model_validate(
        {
            "nodes": [{"name": "machine"}],
            "services": [{"type": t, "node": "machine"} for t in SERVICE_TYPES],
        }
    )


SERVICE_TYPES = ("operator", "gateway", "planner", "driver", "telemetry")


# -- task ----------------------------------------------------------------------------------
Pose = dict[str, float]  # joint -> degrees


class WaypointStep(Model):
    at_s: NonNegS = Field(description="when the operator sends the command")
    pose: str | Pose = Field(description="a named pose or {joint: deg}")
    duration_s: PositiveS = Field(description="time the motion should take")


class WaypointsTask(Model):
    type: Literal["waypoints"]
    poses: dict[str, Pose] = Field(default_factory=dict)
    steps: list[WaypointStep] = Field(min_length=1)


class SineJoint(Model):
    amplitude_deg: Annotated[float, Field(ge=0)]
    frequency_hz: PositiveS
    end_frequency_hz: PositiveS | None = Field(default=None, description="linear chirp to this")
    offset_deg: float = 0.0


class SineSweepTask(Model):
    type: Literal["sine_sweep"]
    start_s: NonNegS = 0.5
    duration_s: PositiveS
    joints: dict[str, SineJoint] = Field(min_length=1)


class PickAndPlaceTask(Model):
    type: Literal["pick_and_place"]
    start_s: NonNegS = 0.5
    cycles: Annotated[int, Field(ge=1, le=1000)] = 1
    move_s: PositiveS = 1.0
    grip_s: PositiveS = 0.5
    gripper_joint: str = "gripper"
    gripper_open_deg: float = 40.0
    gripper_closed_deg: float = 0.0
    home: Pose
    above_pick: Pose
    pick: Pose
    above_place: Pose
    place: Pose


Task = Annotated[WaypointsTask | SineSweepTask | PickAndPlaceTask, Field(discriminator="type")]


# -- faults ------------------------------------------------------------------------------
class FaultBase(Model):
    at_s: NonNegS = Field(description="when the fault starts (simulated s)")
    duration_s: PositiveS | None = Field(default=None, description="how long it lasts; omitted: to the end")


class ServiceFault(FaultBase):
    service: Name
    replica: Annotated[int, Field(ge=0)] | None = Field(default=None, description="omitted: every replica")


class ServiceCrash(ServiceFault):
    type: Literal["service_crash"]


class ServiceHang(ServiceFault):
    type: Literal["service_hang"]


class ServiceSlowdown(ServiceFault):
    type: Literal["service_slowdown"]
    factor: Annotated[float, Field(gt=1, le=10_000)] = Field(description="processing time multiplier")


class LinkFault(FaultBase):
    between: tuple[Name, Name]


class LinkLatency(LinkFault):
    type: Literal["link_latency"]
    extra_ms: PositiveS = Field(description="added to every message's delay")


class LinkLoss(LinkFault):
    type: Literal["link_loss"]
    loss: Annotated[float, Field(ge=0, le=1)]


class LinkPartition(LinkFault):
    type: Literal["link_partition"]


class ServoFaultBase(FaultBase):
    servo: Id


class ServoOverload(ServoFaultBase):
    type: Literal["servo_overload"]
    torque_nm: float = Field(description="external load torque against the output shaft (N·m)")


class ServoOverheat(ServoFaultBase):
    type: Literal["servo_overheat"]


class EncoderNoise(ServoFaultBase):
    type: Literal["encoder_noise"]
    std_deg: PositiveS


class ServoDisconnect(ServoFaultBase):
    type: Literal["servo_disconnect"]


class RollingUpdate(FaultBase):
    """Not a fault but an operation on the same timeline: replace a service's replicas one at
    a time (deregister, drain, stop, start the new version, wait until healthy)."""

    type: Literal["rolling_update"]
    service: Name
    drain_timeout_ms: PositiveS = 2000.0
    startup_ms: NonNegS = 500.0


class EmergencyStop(FaultBase):
    """The operator presses the e-stop: published on the event bus; the driver stops all motion."""

    type: Literal["estop"]


class RegistryOutage(FaultBase):
    type: Literal["registry_outage"]


class BusErrors(FaultBase):
    type: Literal["bus_errors"]
    rate: Annotated[float, Field(gt=0, le=1)] = Field(description="share of bus transactions corrupted")


Fault = Annotated[
    ServiceCrash
    | ServiceHang
    | ServiceSlowdown
    | LinkLatency
    | LinkLoss
    | LinkPartition
    | ServoOverload
    | ServoOverheat
    | EncoderNoise
    | ServoDisconnect
    | BusErrors
    | RollingUpdate
    | RegistryOutage
    | EmergencyStop,
    Field(discriminator="type"),
]


# -- outputs -------------------------------------------------------------------------------
class RenderConfig(Model):
    fps: Annotated[float, Field(gt=0, le=60)] = 15.0
    width: Annotated[int, Field(ge=32, le=1920)] = 320
    height: Annotated[int, Field(ge=32, le=1080)] = 240


class OutputsConfig(Model):
    dir: str | None = Field(default=None, description="run directory; default runs/<name>")
    plots: bool = True
    render: RenderConfig | None = Field(default=None, description="write robot.gif (or pass --render)")
    trace_limit: int = Field(
        default=20_000,
        ge=0,
        description="the most spans and messages trace.json keeps (the first ones; the rest are counted)",
    )


class Spread(Model):
    """A relative variation drawn for each seed: the nominal value times (1 + x), with x normal
    (`normal: 0.1`, a 10 % standard deviation) or uniform (`uniform: 0.2`, within ±20 %)."""

    normal: float | None = Field(default=None, gt=0, le=0.5, description="relative standard deviation")
    uniform: float | None = Field(default=None, gt=0, le=0.9, description="relative half-width")

    @model_validator(mode="after")
    def _one_kind(self) -> Spread:
        if (self.normal is None) == (self.uniform is None):
            raise ValueError(
                "give exactly one of normal: or uniform: (a relative spread, e.g. {uniform: 0.2})"
            )
        return self


class Tolerances(Model):
    """What differs between two real machines built to one design, drawn anew for every seed,
    each servo, link and robot link on its own."""

    servos: dict[str, Spread] = Field(
        default_factory=dict,
        description="servo model parameters (as in a parameters file: coulomb_friction_nm, stall_torque_nm, "
        "position_p_gain, backlash_deg, ...) and their spread",
    )
    supply_v: Spread | None = Field(default=None, description="each servo's supply voltage")
    link_latency: Spread | None = Field(default=None, description="each network link's latency (a scale)")
    robot_masses: Spread | None = Field(default=None, description="each robot link's mass and inertia")

    @field_validator("servos")
    @classmethod
    def _tunable(cls, servos: dict[str, Spread]) -> dict[str, Spread]:
        from servo_core.catalogue import TUNABLE

        unknown = sorted(set(servos) - TUNABLE)
        if unknown:
            raise ValueError(
                f"unknown servo parameter(s) {', '.join(unknown)}; tunable: {', '.join(sorted(TUNABLE))}"
            )
        return servos


class ShadowConfig(Model):
    """`twin run --bus URL --shadow`: when the real servos and the twin beside them part."""

    threshold_deg: float = Field(
        default=5.0, gt=0, le=180, description="|hardware − twin| above this, per joint"
    )
    window_ms: float = Field(default=200.0, ge=0, le=60_000, description="for this long, raises the alarm")


# -- scenario -----------------------------------------------------------------------------------
class Scenario(Model):
    name: Name
    description: str = ""
    python_path: list[str] = Field(
        default_factory=list,
        description="folders (relative to the scenario file) to import services named by class: from",
    )
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    duration: PositiveS = Field(description="simulated seconds")
    physics: PhysicsConfig = PhysicsConfig()
    plant: PlantConfig
    topology: TopologyConfig = Field(default_factory=default_topology)
    task: Task | None = Field(default=None, description="what the operator sends; none: services act alone")
    faults: list[Fault] = Field(default_factory=list, description="what breaks, when, for how long")
    assertions: list[Assertion] = Field(default_factory=list)
    outputs: OutputsConfig = OutputsConfig()
    shadow: ShadowConfig = ShadowConfig()
    tolerances: Tolerances = Field(
        default_factory=Tolerances, description="Monte Carlo: per-seed variations of the physical world"
    )

    @field_validator("python_path")
    @classmethod
    def _paths_relative_to_the_file(cls, paths: list[str], info: ValidationInfo) -> list[str]:
        base = (info.context or {}).get("base_dir")
        if not base:
            return paths
        return [p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p)) for p in paths]

    @field_validator("duration")
    @classmethod
    def _bounded(cls, v: float) -> float:
        if not math.isfinite(v) or v > 24 * 3600:
            raise ValueError("duration must be at most a day of simulated time")
        return v
