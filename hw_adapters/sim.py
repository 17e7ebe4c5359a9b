"""`sim://` — the twin's bus: virtual servos in the PyBullet plant.

Every transaction first brings the plant up to the clock's time, then reads
or writes the servos' control tables byte for byte as a real adapter would,
and records the wire time it would take on a real bus of that baud rate.

In a run the runtime passes the plant and the environment's clock. Alone
(`sim://?robot=pan_tilt&model=xl430-w250&ids=1,2`), the bus builds its own
plant and keeps its own virtual clock, advanced by its transactions and by
`wait()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hw_adapters import wire
from hw_adapters.base import (
    BusError,
    ChecksumError,
    ConfigError,
    NoReplyError,
    PingInfo,
    ServoBus,
    ServoFailedError,
    ServoState,
    parse_bus_url,
    parse_ids,
)
from sim_models.plant import Mount, Plant
from sim_models.servo.catalogue import model_name, servo_spec
from sim_models.servo.device import VirtualServo

SIM_OPTIONS: dict[str, type] = {"robot": str, "model": str, "ids": str, "baud": int, "dt": float}


class SimBus(ServoBus):
    """A bus over the servos of a `Plant`; time comes from `clock()` (s)."""

    def __init__(self, plant: Plant, clock: Callable[[], float] | None = None, baud: int = 1_000_000) -> None:
        self.plant = plant
        self.baud = baud
        self._own_time = 0.0
        self._clock = clock if clock is not None else (lambda: self._own_time)
        self._owns_plant = False
        self._servos = {s.servo_id: s for s in plant.servos}
        protocols = {s.spec.protocol for s in self._servos.values()}
        if len(protocols) > 1:
            raise ConfigError("one bus cannot mix Dynamixel and Feetech servos")
        self.protocol = protocols.pop() if protocols else "dynamixel"
        self._closed = False
        # Fault injection: servos that no longer answer, and a rate of corrupted transactions.
        self.disconnected: set[int] = set()
        self.error_rate = 0.0
        self.error_rng: Any = None
        self.errors_injected = 0
        # As on a real bus: a servo that misses `fail_after` reads in a row is marked failed.
        self.fail_after = 5
        self.stats = SimBusStats()
        self._misses: dict[int, int] = {}

    # -- helpers -------------------------------------------------------------
    def _sync(self) -> None:
        if self._closed:
            raise BusError("the bus is closed")
        self.plant.advance_to(self._clock())

    def _spend(self, seconds: float) -> None:
        self.last_duration_s = seconds
        if self._owns_plant:
            self._own_time += seconds

    def _servo(self, servo_id: int) -> VirtualServo:
        servo = self._servos.get(servo_id)
        if servo is None or servo_id in self.disconnected:
            raise NoReplyError(f"servo {servo_id} did not answer (no status packet)")
        return servo

    def _maybe_fail(self) -> None:
        """Fault injection: a transaction lost to noise on the line, at `error_rate`."""
        if self.error_rate > 0.0 and self.error_rng is not None and self.error_rng.random() < self.error_rate:
            self.errors_injected += 1
            raise ChecksumError("corrupt reply (injected bus error)")

    # -- ServoBus ---------------------------------------------------------------
    def ping(self, servo_id: int) -> PingInfo | None:
        self._sync()
        servo = self._servos.get(servo_id)
        request = wire.bytes_time(wire.instruction_size(self.protocol, 0), self.baud)
        if servo is None:
            self._spend(request)
            return None
        reply = wire.status_size(self.protocol, 3 if self.protocol == "dynamixel" else 0)
        self._spend(request + wire.bytes_time(reply, self.baud) + servo.return_delay_s)
        # As a real adapter does: identity from the control table, the name from the catalogue.
        number = servo.read_register("model_number")
        firmware = servo.read_register(
            "firmware_version" if self.protocol == "dynamixel" else "firmware_major"
        )
        return PingInfo(servo_id, number, model_name(self.protocol, number), firmware)

    def scan(self, ids: Iterable[int] = range(0, 253)) -> list[PingInfo]:
        found, total = [], 0.0
        for i in ids:
            info = self.ping(i)
            total += self.last_duration_s
            if info is not None:
                found.append(info)
        self.last_duration_s = total
        return found

    def read_states(self, ids: Iterable[int]) -> dict[int, ServoState]:
        self._sync()
        ids = list(ids)
        self.stats.transactions += 1
        failed = [i for i in ids if i in self.stats.failed]
        if failed:
            raise ServoFailedError(failed)
        silent = [i for i in ids if i in self.disconnected]
        if silent:
            self.stats.no_reply += 1
            for i in silent:
                self._misses[i] = self._misses.get(i, 0) + 1
                if self._misses[i] >= self.fail_after:
                    self.stats.failed.add(i)
            self._spend(wire.sync_read_time(self.protocol, len(ids), 0, self.baud, 0.0))
            raise NoReplyError(f"servo(s) {silent} did not answer (no status packet)")
        for i in ids:
            self._misses[i] = 0
        try:
            self._maybe_fail()
        except ChecksumError:
            self.stats.checksum_errors += 1
            raise
        servos = [self._servo(i) for i in ids]
        out: dict[int, ServoState] = {}
        delays = 0.0
        extra = 0.0
        for i, servo in zip(ids, servos, strict=True):
            delays += servo.return_delay_s
            if self.protocol == "dynamixel":
                block = servo.read(wire.DXL_STATE_ADDR, wire.DXL_STATE_LEN)
                hw_error = servo.read_register("hardware_error_status")
                if hw_error:  # the status packet's alert bit makes the adapter read it
                    extra += wire.bytes_time(
                        wire.instruction_size("dynamixel", 4) + wire.status_size("dynamixel", 1),
                        self.baud,
                    )
                out[i] = wire.decode_dxl_state(
                    i, block, hw_error, servo.spec.name, servo.spec.resolution_ticks
                )
            else:
                block = servo.read(wire.STS_STATE_ADDR, wire.STS_STATE_LEN)
                out[i] = wire.decode_sts_state(i, block, servo.spec.resolution_ticks)
        length = wire.DXL_STATE_LEN if self.protocol == "dynamixel" else wire.STS_STATE_LEN
        self._spend(wire.sync_read_time(self.protocol, len(ids), length, self.baud, delays) + extra)
        return out

    def write_goals(self, goals: Mapping[int, float]) -> None:
        self._sync()
        self._maybe_fail()
        # A sync write gets no status packets back, so a servo that refuses its goal
        # would do so silently: check every id and goal first and send nothing if one is bad.
        targets = []
        for servo_id, angle in goals.items():
            servo = self._servo(servo_id)
            ticks = wire.rad_to_ticks(angle)
            lo, hi = servo.goal_range
            if servo.spec.protocol == "dynamixel" and not lo <= ticks <= hi:
                raise ConfigError(
                    f"servo {servo_id}: goal {angle:.4g} rad (tick {ticks}) is outside its position limits "
                    f"[{lo}, {hi}]"
                )
            targets.append((servo, ticks))
        for servo, ticks in targets:
            servo.write_register("goal_position", ticks)
        length = 4 if self.protocol == "dynamixel" else 2
        self._spend(wire.sync_write_time(self.protocol, len(goals), length, self.baud))

    def set_torque(self, ids: Iterable[int], enabled: bool) -> None:
        self._sync()
        ids = list(ids)
        for servo_id in ids:
            servo = self._servo(servo_id)
            servo.write_register("torque_enable", int(enabled))
        self._spend(wire.sync_write_time(self.protocol, len(ids), 1, self.baud))

    def wait(self, seconds: float) -> None:
        if not self._owns_plant:
            super().wait(seconds)
        if self._closed:
            raise BusError("the bus is closed")
        self._own_time += seconds
        self.plant.advance_to(self._own_time)

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.plant.advance_to(self._clock())
            for servo in self._servos.values():
                servo.write_register("torque_enable", 0)
        finally:
            self._closed = True
            if self._owns_plant:
                self.plant.close()


@dataclass
class SimBusStats:
    """The same counters a serial bus keeps, for the twin's bus and its injected faults."""

    transactions: int = 0
    no_reply: int = 0
    checksum_errors: int = 0
    failed: set[int] = field(default_factory=set)


def open_sim_bus(url: str, plant: Plant | None = None, clock: Callable[[], float] | None = None) -> SimBus:
    """`sim://` with the runtime's plant, or a standalone plant from the URL's options."""
    _, _, opts = parse_bus_url(url, SIM_OPTIONS)
    baud = int(opts.get("baud", 1_000_000))  # type: ignore[arg-type]
    if baud <= 0:
        raise ConfigError(f"{url}: baud must be a positive number of bits per second, got {baud}")
    if plant is not None:
        if {"robot", "model", "ids", "dt"} & opts.keys():
            raise ConfigError(f"{url}: robot, model, ids and dt come from the scenario in a run")
        return SimBus(plant, clock, baud)
    from sim_models.robots import actuated_joints, robot_urdf_text

    if "robot" not in opts:
        raise ConfigError(
            f"{url}: a standalone sim:// bus needs ?robot=NAME (e.g. sim://?robot=pan_tilt&model=xl430-w250)"
        )
    urdf = robot_urdf_text(str(opts["robot"]))
    joints = list(actuated_joints(urdf))
    spec = servo_spec(str(opts.get("model", "xl430-w250")))
    ids = parse_ids(str(opts["ids"])) if "ids" in opts else list(range(1, len(joints) + 1))
    if len(ids) > len(joints):
        raise ConfigError(f"{url}: {len(ids)} ids but the robot has {len(joints)} joints")
    mounts = [Mount(j, VirtualServo(spec, i)) for j, i in zip(joints, ids, strict=False)]
    sim_plant = Plant(urdf, mounts, dt=float(opts.get("dt", 0.001)))  # type: ignore[arg-type]
    bus = SimBus(sim_plant, None, baud)
    bus._owns_plant = True
    return bus
