"""`sim://` — the twin's bus: virtual servos in the PyBullet plant.

Every transaction first brings the plant up to the clock's time, then reads
or writes the servos' control tables byte for byte as a real adapter would,
and records the wire time it would take on a real bus of that baud rate.

In a run the runtime passes the plant and the environment's clock. Alone
(`sim://?robot=pan_tilt&model=xl430-w250&ids=1,2`), the bus builds its own
plant and keeps its own virtual clock, advanced by its transactions and by
`wait()`.

Its counters are the serial buses': every ping, read and write is a transaction,
and an id that does not answer counts `no_reply`. `retries` and `fail_after`
(URL options, defaults as on the serial buses) are the rules that
`hw_adapters.faulty.FaultInjectingBus` applies when it wraps this bus and injects
faults: the twin's servos themselves never miss a transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from hw_adapters.base import (
    BusError,
    BusSnapshot,
    ConfigError,
    NoReplyError,
    OptionType,
    PingInfo,
    ServoBus,
    ServoState,
    parse_bus_url,
    parse_ids,
)
from hw_adapters.faulty import DEFAULT_FAIL_AFTER, DEFAULT_RETRIES, check_policy
from servo_core.catalogue import model_name, read_params, servo_spec
from servo_core.protocol import DYNAMIXEL, bytes_time
from servo_core.units import rad_to_ticks, watchdog_units
from sim_models.plant import Mount, Plant
from sim_models.servo.device import VirtualServo

__all__ = ["open_sim_bus", "SIM_OPTIONS", "SimBus"]

SIM_OPTIONS: dict[str, OptionType] = {
    "robot": str,
    "model": str,
    "params": str,
    "ids": str,
    "baud": int,
    "dt": float,
    "retries": int,
    "fail_after": int,
}


class SimBus(ServoBus):
    """A bus over the servos of a `Plant`; time comes from `clock()` (s).

    Faults of the bus itself (lost servos, corrupt replies) come from wrapping it
    in `hw_adapters.faulty.FaultInjectingBus`.
    """

    def __init__(
        self,
        plant: Plant,
        clock: Callable[[], float] | None = None,
        baud: int = 1_000_000,
        *,
        retries: int = DEFAULT_RETRIES,
        fail_after: int = DEFAULT_FAIL_AFTER,
    ) -> None:
        check_policy(retries, fail_after)
        self.plant = plant
        self.baud = baud
        self.retries = retries
        self.fail_after = fail_after
        self._own_time = 0.0
        self._clock = clock if clock is not None else (lambda: self._own_time)
        self._owns_plant = False
        self._servos = {s.servo_id: s for s in plant.servos}
        protocols = {s.spec.bus_protocol for s in self._servos.values()}
        if len(protocols) > 1:
            raise ConfigError("one bus cannot mix servos of different protocols")
        self.protocol = protocols.pop() if protocols else DYNAMIXEL
        self._closed = False
        self._layout: tuple[int, int, bool, float] | None = None
        self._transactions = 0
        self._no_reply = 0

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
        if servo is None:
            raise NoReplyError(f"servo {servo_id} did not answer (no status packet)")
        return servo

    # -- ServoBus ---------------------------------------------------------------
    def ping(self, servo_id: int) -> PingInfo | None:
        self._sync()
        self._transactions += 1
        proto = self.protocol
        servo = self._servos.get(servo_id)
        request = bytes_time(proto.instruction_size(0), self.baud)
        if servo is None:
            self._no_reply += 1
            self._spend(request)
            return None
        reply = proto.status_size(proto.ping_reply_params)
        self._spend(request + bytes_time(reply, self.baud) + servo.return_delay_s)
        # As a real adapter does: identity from the control table, the name from the catalogue.
        number = servo.read_register("model_number")
        firmware = servo.read_register(proto.firmware_register)
        return PingInfo(servo_id, number, model_name(proto, number), firmware)

    def read_states(self, ids: Iterable[int]) -> dict[int, ServoState]:
        self._sync()
        ids = list(ids)
        self._transactions += 1
        proto = self.protocol
        table = self._servos
        servos = [table.get(i) for i in ids]
        if None in servos:
            self._no_reply += 1
            self._spend(proto.sync_read_time(len(ids), 0, self.baud, 0.0))
            missing = ids[servos.index(None)]
            raise NoReplyError(f"servo {missing} did not answer (no status packet)")
        address, length, alarm_in_block, alarm_read = self._state_layout()
        decode = proto.decode
        out: dict[int, ServoState] = {}
        delays = 0.0
        extra = 0.0
        for i, servo in zip(ids, servos, strict=True):
            assert servo is not None
            delays += servo.return_delay_s
            block = servo.read(address, length)
            hw_error = 0
            if not alarm_in_block:
                # Dynamixel reports alarms by a bit in the status packet, after which the adapter
                # reads Hardware Error Status; Feetech carries them inside the state block.
                hw_error = servo.read_register("hardware_error_status")
                if hw_error:
                    extra += alarm_read
            spec = servo.spec
            out[i] = decode(i, block, hw_error, spec.name, spec.resolution_ticks)
        self._spend(proto.sync_read_time(len(ids), length, self.baud, delays) + extra)
        return out

    def _state_layout(self) -> tuple[int, int, bool, float]:
        """(address, length) of the state block, whether the alarm byte is in it, and the wire
        time of reading the alarm register on its own: fixed by the protocol, computed once."""
        layout = self._layout
        if layout is None:
            proto = self.protocol
            address, length = proto.state_address, proto.state_length
            alarm = proto.table["hardware_error_status"]
            in_block = address <= alarm.address < address + length
            alarm_read = bytes_time(proto.instruction_size(4) + proto.status_size(alarm.size), self.baud)
            layout = self._layout = (address, length, in_block, alarm_read)
        return layout

    def goal_write_time(self, n_servos: int) -> float:
        """Wire time of a sync write of `n_servos` goals (s), without sending it."""
        return self.protocol.sync_write_time(n_servos, self.protocol.goal.size, self.baud)

    def write_goals(self, goals: Mapping[int, float]) -> None:
        self._sync()
        refuses = self.protocol.refuses_out_of_range_goals
        table = self._servos
        # A sync write gets no status packets back, so a servo that refuses its goal
        # would do so silently: check every id and goal first and send nothing if one is bad.
        targets = []
        for servo_id, angle in goals.items():
            servo = table.get(servo_id)
            if servo is None:
                servo = self._servo(servo_id)  # raises NoReplyError
            ticks = rad_to_ticks(angle, servo.spec.resolution_ticks)
            if refuses:
                lo, hi = servo.goal_range
                if not lo <= ticks <= hi:
                    raise ConfigError(
                        f"servo {servo_id}: goal {angle:.4g} rad (tick {ticks}) is outside its position "
                        f"limits [{lo}, {hi}]"
                    )
            targets.append((servo, ticks))
        for servo, ticks in targets:
            servo.write_register("goal_position", ticks)
        if not goals:  # nothing to write: nothing sent, as on the serial buses
            self._spend(0.0)
            return
        self._transactions += 1
        self._spend(self.goal_write_time(len(goals)))

    def set_torque(self, ids: Iterable[int], enabled: bool) -> None:
        self._sync()
        ids = list(ids)
        for servo_id in ids:
            servo = self._servo(servo_id)
            servo.write_register("torque_enable", int(enabled))
        if not ids:
            self._spend(0.0)
            return
        self._transactions += 1
        size = self.protocol.table["torque_enable"].size
        self._spend(self.protocol.sync_write_time(len(ids), size, self.baud))

    def arm_watchdog(self, ids: Iterable[int], timeout_s: float) -> bool:
        """As on the real bus: Bus Watchdog in 20 ms units on servos whose table has it."""
        return self._write_watchdog(list(ids), watchdog_units(timeout_s))

    def disarm_watchdog(self, ids: Iterable[int]) -> None:
        self._write_watchdog(list(ids), 0)

    def _write_watchdog(self, ids: list[int], units: int) -> bool:
        if "bus_watchdog" not in self.protocol.table or not ids:
            self._spend(0.0)
            return False
        self._sync()
        for servo_id in ids:
            self._servo(servo_id).write_register("bus_watchdog", units)
        self._transactions += 1
        self._spend(self.protocol.sync_write_time(len(ids), 1, self.baud))
        return True

    def snapshot(self) -> BusSnapshot:
        return BusSnapshot(transactions=self._transactions, no_reply=self._no_reply)

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


def open_sim_bus(url: str, plant: Plant | None = None, clock: Callable[[], float] | None = None) -> SimBus:
    """`sim://` with the runtime's plant, or a standalone plant from the URL's options."""
    _, _, opts = parse_bus_url(url, SIM_OPTIONS)
    baud = int(opts.get("baud", 1_000_000))
    if baud <= 0:
        raise ConfigError(f"{url}: baud must be a positive number of bits per second, got {baud}")
    retries = int(opts.get("retries", DEFAULT_RETRIES))
    fail_after = int(opts.get("fail_after", DEFAULT_FAIL_AFTER))
    try:
        check_policy(retries, fail_after)
    except ConfigError as exc:
        raise ConfigError(f"{url}: {exc}") from None
    if plant is not None:
        if {"robot", "model", "params", "ids", "dt"} & opts.keys():
            raise ConfigError(f"{url}: robot, model, params, ids and dt come from the scenario in a run")
        return SimBus(plant, clock, baud, retries=retries, fail_after=fail_after)
    from sim_models.robots import actuated_joints, robot_urdf_text

    if "robot" not in opts:
        raise ConfigError(
            f"{url}: a standalone sim:// bus needs ?robot=NAME (e.g. sim://?robot=pan_tilt&model=xl430-w250)"
        )
    urdf = robot_urdf_text(str(opts["robot"]))
    joints = list(actuated_joints(urdf))
    if "model" in opts and "params" in opts:
        raise ConfigError(f"{url}: give model= or params= (a parameters file names its model), not both")
    if "params" in opts:
        spec = read_params(str(opts["params"]))
    else:
        spec = servo_spec(str(opts.get("model", "xl430-w250")))
    ids = parse_ids(str(opts["ids"])) if "ids" in opts else list(range(1, len(joints) + 1))
    if len(ids) > len(joints):
        raise ConfigError(f"{url}: {len(ids)} ids but the robot has {len(joints)} joints")
    mounts = [Mount(j, VirtualServo(spec, i)) for j, i in zip(joints, ids, strict=False)]
    sim_plant = Plant(urdf, mounts, dt=float(opts.get("dt", 0.001)))
    bus = SimBus(sim_plant, None, baud, retries=retries, fail_after=fail_after)
    bus._owns_plant = True
    return bus
