"""One object per servo protocol: what generic code asks instead of comparing names.

`DYNAMIXEL` (Protocol 2.0, X series control table) and `FEETECH` (SCS/STS)
carry packet sizes, the state blocks a bus can read every cycle and how to
decode them, the goal and firmware registers, how each firmware treats an out-of-range
goal and how it encodes signed values. `protocol_named(spec.protocol)` finds
one from a catalogue entry. Packet codecs stay with the adapters
(`hw_adapters.dynamixel.protocol`, `hw_adapters.feetech.protocol`).

State blocks (`Protocol.state_blocks`, the `state=` option of the serial bus
URLs): "full" (the default) reads everything a ServoState holds; "motion"
only position and velocity; "position" only the position. A field a block
does not read is NaN (velocity, load, temperature, voltage), None (current)
or False (moving). Faults are never invented: they come from the status
packet (Dynamixel's alert bit, Feetech's status byte) whatever block is read.

Wire time is 10 bits per byte (8N1) at the baud rate, plus each answering
servo's return delay. Sizes follow the vendors' protocol documents (ROBOTIS
Protocol 2.0 e-Manual, Feetech SCS/STS communication protocol).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from servo_core.control_table import ControlTable, Register
from servo_core.dynamixel_table import DYNAMIXEL_X
from servo_core.errors import ConfigError
from servo_core.feetech_table import FEETECH_STS
from servo_core.state import ServoFault, ServoState
from servo_core.units import TWO_PI, decode_sign_magnitude

__all__ = [
    "BITS_PER_BYTE",
    "DYNAMIXEL",
    "FEETECH",
    "PROTOCOLS",
    "Protocol",
    "StateBlock",
    "bytes_time",
    "protocol_named",
]

BITS_PER_BYTE = 10

# Decoders: (servo id, state block, hardware error byte, model name, resolution) -> ServoState.
StateDecoder = Callable[[int, bytes, int, str, int], ServoState]


def bytes_time(n_bytes: int, baud: int) -> float:
    return n_bytes * BITS_PER_BYTE / baud


def _faults(raw: int, table: Mapping[int, ServoFault]) -> ServoFault:
    out = ServoFault.NONE
    for bit, fault in table.items():
        if raw & bit:
            out |= fault
    return out


@dataclass(frozen=True)
class StateBlock:
    """A run of registers a bus reads every cycle, and how to make a ServoState of it."""

    register: str  # the first register read
    length: int  # bytes per servo
    decode: StateDecoder
    reads: str  # the ServoState fields it fills, for people


@dataclass(frozen=True, eq=False)
class Protocol:
    """The facts of one servo protocol that code above the packet codec needs."""

    name: str
    table: ControlTable
    instruction_overhead: int  # bytes of an instruction packet besides its parameters (unstuffed)
    status_overhead: int  # bytes of a status packet besides its parameters
    sync_read_header: int  # parameter bytes of a sync read before the ids
    sync_write_header: int  # parameter bytes of a sync write before the per-id data
    ping_reply_params: int  # parameter bytes of a status packet answering a ping
    state_register: str  # first register of the block read every cycle
    state_length: int
    refresh_register: str  # lowest register a servo refreshes from its sensors on a read
    firmware_register: str  # what PingInfo.firmware reports
    refuses_out_of_range_goals: bool  # Dynamixel refuses (data limit error); Feetech clamps
    sign_magnitude: bool  # signed fields: a sign bit (Feetech) or two's complement (Dynamixel)
    full_pwm: int  # register units of 100 % PWM
    max_id: int  # the highest id a servo may take
    operating_modes: Mapping[int, str]  # the modes the twin models, by register value
    fault_bits: Mapping[int, ServoFault]  # the vendor's alarm bits
    default_resolution: int  # ticks per turn assumed for a model the catalogue does not know
    decode: StateDecoder
    state_blocks: Mapping[str, StateBlock]  # by name: "full" (state_register, state_length), ...

    def __repr__(self) -> str:
        return f"Protocol({self.name!r})"

    @property
    def state_address(self) -> int:
        return self.table[self.state_register].address

    @property
    def goal(self) -> Register:
        return self.table["goal_position"]

    def instruction_size(self, n_params: int) -> int:
        """Bytes of one instruction packet with `n_params` parameter bytes (unstuffed)."""
        return self.instruction_overhead + n_params

    def status_size(self, n_params: int) -> int:
        return self.status_overhead + n_params

    def sync_read_time(self, n_ids: int, length: int, baud: int, return_delays_s: float) -> float:
        request = self.instruction_size(self.sync_read_header + n_ids)
        replies = n_ids * self.status_size(length)
        return bytes_time(request + replies, baud) + return_delays_s

    def sync_write_time(self, n_ids: int, length: int, baud: int) -> float:
        return bytes_time(self.instruction_size(self.sync_write_header + n_ids * (1 + length)), baud)

    def state_block(self, name: str) -> StateBlock:
        """The state block called `name`. ConfigError listing the valid names."""
        try:
            return self.state_blocks[name]
        except KeyError:
            valid = ", ".join(self.state_blocks)
            raise ConfigError(f"{self.name}: no state block {name!r}; valid: {valid}") from None

    def faults(self, raw: int) -> ServoFault:
        """The vendor's alarm byte in the common vocabulary."""
        return _faults(raw, self.fault_bits) if raw else ServoFault.NONE


# Little-endian layouts of the state blocks ('x' skips bytes not decoded).
DXL_STATE_BLOCK = struct.Struct("<BxhhiixxxxxxxxHB")  # 122 moving .. 146 temperature
STS_STATE_BLOCK = struct.Struct("<HHHBBxBBxxH")  # 56 position .. 69 current

_DXL_VELOCITY_UNIT = 0.229 * TWO_PI / 60.0  # rad/s per unit
_DXL_FAULT_BITS = {
    1: ServoFault.INPUT_VOLTAGE,
    4: ServoFault.OVERHEAT,
    8: ServoFault.ENCODER,
    16: ServoFault.ELECTRICAL_SHOCK,
    32: ServoFault.OVERLOAD,
}
_STS_FAULT_BITS = {
    1: ServoFault.INPUT_VOLTAGE,
    2: ServoFault.SENSOR,
    4: ServoFault.OVERHEAT,
    8: ServoFault.ELECTRICAL_SHOCK,
    32: ServoFault.OVERLOAD,
}


def _decode_dxl(servo_id: int, block: bytes, hw_error: int, model: str, resolution: int) -> ServoState:
    """Dynamixel X registers 122..146 (and Hardware Error Status) in SI units."""
    moving, pwm, raw_current, velocity, position, voltage, temperature = DXL_STATE_BLOCK.unpack(block)
    if model.startswith("xl430"):
        load, current = raw_current / 1000.0, None  # Present Load, 0.1 %
    else:
        current = raw_current * (0.00269 if model.startswith("xm") else 0.001)
        load = pwm / 885.0
    return ServoState(  # positional: this runs for every servo in every cycle
        servo_id,
        (position - resolution // 2) * TWO_PI / resolution,
        velocity * _DXL_VELOCITY_UNIT,
        load,
        current,
        float(temperature),
        voltage / 10.0,
        _faults(hw_error, _DXL_FAULT_BITS) if hw_error else ServoFault.NONE,
        bool(moving),
    )


def _decode_sts(servo_id: int, block: bytes, hw_error: int, model: str, resolution: int) -> ServoState:
    """Feetech STS registers 56..70 in SI units; the alarm byte is inside the block (and in
    the status byte, `hw_error`, which a bus may pass as well)."""
    position, speed, load, voltage, temperature, error, moving, current = STS_STATE_BLOCK.unpack(block)
    error |= hw_error
    step = TWO_PI / resolution
    # Sign-magnitude fields (units.decode_sign_magnitude), inline: this runs for every servo in
    # every cycle. Bit 15 is the sign of position, speed and current, bit 10 that of load.
    ticks = -(position & 0x7FFF) if position & 0x8000 else position & 0x7FFF
    return ServoState(  # positional, for the same reason
        servo_id,
        (ticks - resolution // 2) * step,
        (-(speed & 0x7FFF) if speed & 0x8000 else speed & 0x7FFF) * step,
        (-(load & 0x3FF) if load & 0x400 else load & 0x3FF) / 1000.0,
        (-(current & 0x7FFF) if current & 0x8000 else current & 0x7FFF) * 0.0065,
        float(temperature),
        voltage / 10.0,
        _faults(error, _STS_FAULT_BITS) if error else ServoFault.NONE,
        bool(moving),
    )


_UNREAD = math.nan  # a field the block read does not hold
_DXL_POSITION = struct.Struct("<i")  # 132 present position
_DXL_MOTION = struct.Struct("<ii")  # 128 present velocity, 132 present position
_STS_POSITION = struct.Struct("<H")  # 56 present position
_STS_MOTION = struct.Struct("<HH")  # 56 present position, 58 present speed


def _dxl_faults(hw_error: int) -> ServoFault:
    return _faults(hw_error, _DXL_FAULT_BITS) if hw_error else ServoFault.NONE


def _decode_dxl_position(
    servo_id: int, block: bytes, hw_error: int, model: str, resolution: int
) -> ServoState:
    (position,) = _DXL_POSITION.unpack(block)
    angle = (position - resolution // 2) * TWO_PI / resolution
    return ServoState(servo_id, angle, _UNREAD, _UNREAD, None, _UNREAD, _UNREAD, _dxl_faults(hw_error), False)


def _decode_dxl_motion(servo_id: int, block: bytes, hw_error: int, model: str, resolution: int) -> ServoState:
    velocity, position = _DXL_MOTION.unpack(block)
    angle = (position - resolution // 2) * TWO_PI / resolution
    return ServoState(
        servo_id,
        angle,
        velocity * _DXL_VELOCITY_UNIT,
        _UNREAD,
        None,
        _UNREAD,
        _UNREAD,
        _dxl_faults(hw_error),
        False,
    )


def _sts_faults(hw_error: int) -> ServoFault:
    return _faults(hw_error, _STS_FAULT_BITS) if hw_error else ServoFault.NONE


def _decode_sts_position(
    servo_id: int, block: bytes, hw_error: int, model: str, resolution: int
) -> ServoState:
    """Feetech present position; the alarms come from the status byte (`hw_error`)."""
    (position,) = _STS_POSITION.unpack(block)
    angle = (decode_sign_magnitude(position, 15) - resolution // 2) * TWO_PI / resolution
    return ServoState(servo_id, angle, _UNREAD, _UNREAD, None, _UNREAD, _UNREAD, _sts_faults(hw_error), False)


def _decode_sts_motion(servo_id: int, block: bytes, hw_error: int, model: str, resolution: int) -> ServoState:
    position, speed = _STS_MOTION.unpack(block)
    step = TWO_PI / resolution
    return ServoState(
        servo_id,
        (decode_sign_magnitude(position, 15) - resolution // 2) * step,
        decode_sign_magnitude(speed, 15) * step,
        _UNREAD,
        None,
        _UNREAD,
        _UNREAD,
        _sts_faults(hw_error),
        False,
    )


_FULL = "position, velocity, load, current, temperature, voltage, moving"

DYNAMIXEL = Protocol(
    name="dynamixel",
    table=DYNAMIXEL_X,
    instruction_overhead=10,
    status_overhead=11,
    sync_read_header=4,
    sync_write_header=4,
    ping_reply_params=3,
    state_register="moving",
    state_length=25,
    refresh_register="hardware_error_status",
    firmware_register="firmware_version",
    refuses_out_of_range_goals=True,
    sign_magnitude=False,
    full_pwm=885,
    max_id=252,  # 0xFD is reserved, 0xFE is broadcast
    operating_modes={3: "position", 4: "extended position", 1: "velocity", 16: "pwm"},
    fault_bits=_DXL_FAULT_BITS,
    default_resolution=4096,  # X series
    decode=_decode_dxl,
    state_blocks={
        "full": StateBlock("moving", 25, _decode_dxl, _FULL),  # 122..146
        "motion": StateBlock("present_velocity", 8, _decode_dxl_motion, "position, velocity"),  # 128..135
        "position": StateBlock("present_position", 4, _decode_dxl_position, "position"),  # 132..135
    },
)

FEETECH = Protocol(
    name="feetech",
    table=FEETECH_STS,
    instruction_overhead=6,
    status_overhead=6,
    sync_read_header=2,
    sync_write_header=2,
    ping_reply_params=0,
    state_register="present_position",
    state_length=15,
    refresh_register="present_position",
    firmware_register="firmware_major",
    refuses_out_of_range_goals=False,
    sign_magnitude=True,
    full_pwm=1000,
    max_id=253,  # 0xFE is broadcast
    operating_modes={0: "position", 1: "velocity", 2: "pwm"},
    fault_bits=_STS_FAULT_BITS,
    default_resolution=4096,  # STS series
    decode=_decode_sts,
    state_blocks={
        "full": StateBlock("present_position", 15, _decode_sts, _FULL),  # 56..70
        "motion": StateBlock("present_position", 4, _decode_sts_motion, "position, velocity"),  # 56..59
        "position": StateBlock("present_position", 2, _decode_sts_position, "position"),  # 56..57
    },
)

PROTOCOLS: Mapping[str, Protocol] = {p.name: p for p in (DYNAMIXEL, FEETECH)}


def protocol_named(name: str) -> Protocol:
    """The protocol a catalogue entry or a URL names. ConfigError listing the known ones."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ConfigError(f"unknown servo protocol {name!r}; known: {', '.join(sorted(PROTOCOLS))}") from None
