"""Wire timing and state-block decoding shared by every adapter of a protocol.

Wire time is 10 bits per byte (8N1) at the baud rate, plus each answering
servo's return delay. Packet sizes follow Dynamixel Protocol 2.0 and the
Feetech SCS/STS format (see shared/servo-facts.md).
"""

from __future__ import annotations

import math
import struct

from hw_adapters.base import ConfigError, ServoFault, ServoState

BITS_PER_BYTE = 10
TWO_PI = 2.0 * math.pi

# Dynamixel X: one sync read of Moving .. Present Temperature (122..146).
DXL_STATE_ADDR, DXL_STATE_LEN = 122, 25
# Feetech STS: Present Position .. Present Current (56..70).
STS_STATE_ADDR, STS_STATE_LEN = 56, 15

DXL_VELOCITY_UNIT = 0.229 * TWO_PI / 60.0
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


def bytes_time(n_bytes: int, baud: int) -> float:
    return n_bytes * BITS_PER_BYTE / baud


def instruction_size(protocol: str, n_params: int) -> int:
    """Bytes of one instruction packet with n_params parameter bytes (unstuffed)."""
    return 10 + n_params if protocol == "dynamixel" else 6 + n_params


def status_size(protocol: str, n_params: int) -> int:
    return 11 + n_params if protocol == "dynamixel" else 6 + n_params


def sync_read_time(protocol: str, n_ids: int, length: int, baud: int, return_delays_s: float) -> float:
    request = instruction_size(protocol, 4 + n_ids if protocol == "dynamixel" else 2 + n_ids)
    replies = n_ids * status_size(protocol, length)
    return bytes_time(request + replies, baud) + return_delays_s


def sync_write_time(protocol: str, n_ids: int, length: int, baud: int) -> float:
    header = 4 if protocol == "dynamixel" else 2
    return bytes_time(instruction_size(protocol, header + n_ids * (1 + length)), baud)


def _faults(raw: int, table: dict[int, ServoFault]) -> ServoFault:
    out = ServoFault.NONE
    for bit, fault in table.items():
        if raw & bit:
            out |= fault
    return out


def _sign_magnitude(value: int, bit: int) -> int:
    magnitude = value & ((1 << bit) - 1)
    return -magnitude if value & (1 << bit) else magnitude


# Little-endian layouts of the state blocks ('x' skips bytes we do not decode).
_DXL_BLOCK = struct.Struct("<BxhhiixxxxxxxxHB")  # 122 moving .. 146 temperature
_STS_BLOCK = struct.Struct("<HHHBBxBBxxH")  # 56 position .. 69 current


def decode_dxl_state(
    servo_id: int, block: bytes, hw_error: int, model: str, resolution: int = 4096
) -> ServoState:
    """Decode Dynamixel X registers 122..146 (and Hardware Error Status) to SI."""
    moving, pwm, raw_current, velocity, position, voltage, temperature = _DXL_BLOCK.unpack(block)
    if model.startswith("xl430"):
        load, current = raw_current / 1000.0, None  # Present Load, 0.1 %
    else:
        current = raw_current * (0.00269 if model.startswith("xm") else 0.001)
        load = pwm / 885.0
    return ServoState(  # positional: this runs for every servo in every cycle
        servo_id,
        (position - resolution // 2) * TWO_PI / resolution,
        velocity * DXL_VELOCITY_UNIT,
        load,
        current,
        float(temperature),
        voltage / 10.0,
        _faults(hw_error, _DXL_FAULT_BITS) if hw_error else ServoFault.NONE,
        bool(moving),
    )


def decode_sts_state(servo_id: int, block: bytes, resolution: int = 4096) -> ServoState:
    """Decode Feetech STS registers 56..70 to SI (sign-magnitude fields)."""
    position, speed, load, voltage, temperature, error, moving, current = _STS_BLOCK.unpack(block)
    step = TWO_PI / resolution
    return ServoState(  # positional: this runs for every servo in every cycle
        servo_id,
        (_sign_magnitude(position, 15) - resolution // 2) * step,
        _sign_magnitude(speed, 15) * step,
        _sign_magnitude(load, 10) / 1000.0,
        _sign_magnitude(current, 15) * 0.0065,
        float(temperature),
        voltage / 10.0,
        _faults(error, _STS_FAULT_BITS) if error else ServoFault.NONE,
        bool(moving),
    )


def rad_to_ticks(angle: float, resolution: int = 4096) -> int:
    """Nearest tick for an angle (0 rad = the centre tick), within 0..resolution-1.

    Angles in the last half tick below π round to `resolution`, one past the
    range: they go to the last tick instead (within one tick of the angle).
    ConfigError for an angle that is not a finite number.
    """
    if not math.isfinite(angle):
        raise ConfigError(f"a goal must be a finite angle in rad, got {angle!r}")
    ticks = int(math.floor(angle * resolution / TWO_PI + 0.5)) + resolution // 2
    return resolution - 1 if ticks == resolution else ticks
