"""Wire timing and state-block decoding shared by every adapter of a protocol.

Wire time is 10 bits per byte (8N1) at the baud rate, plus each answering
servo's return delay. Packet sizes follow Dynamixel Protocol 2.0 and the
Feetech SCS/STS format (see shared/servo-facts.md).
"""

from __future__ import annotations

import math

from hw_adapters.base import ServoFault, ServoState

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


def _le(block: bytes, offset: int, size: int, signed: bool = False) -> int:
    return int.from_bytes(block[offset : offset + size], "little", signed=signed)


def _sign_magnitude(value: int, bit: int) -> int:
    magnitude = value & ((1 << bit) - 1)
    return -magnitude if value & (1 << bit) else magnitude


def decode_dxl_state(
    servo_id: int, block: bytes, hw_error: int, model: str, resolution: int = 4096
) -> ServoState:
    """Decode Dynamixel X registers 122..146 (and Hardware Error Status) to SI."""
    o = DXL_STATE_ADDR
    raw_current = _le(block, 126 - o, 2, signed=True)
    if model.startswith("xl430"):
        load, current = raw_current / 1000.0, None  # Present Load, 0.1 %
    else:
        unit = 0.00269 if model.startswith("xm") else 0.001
        current = raw_current * unit
        load = _le(block, 124 - o, 2, signed=True) / 885.0
    return ServoState(
        id=servo_id,
        position=(_le(block, 132 - o, 4, signed=True) - resolution // 2) * TWO_PI / resolution,
        velocity=_le(block, 128 - o, 4, signed=True) * DXL_VELOCITY_UNIT,
        load=load,
        current=current,
        temperature=float(block[146 - o]),
        voltage=_le(block, 144 - o, 2) / 10.0,
        faults=_faults(hw_error, _DXL_FAULT_BITS),
        moving=bool(block[122 - o]),
    )


def decode_sts_state(servo_id: int, block: bytes, resolution: int = 4096) -> ServoState:
    """Decode Feetech STS registers 56..70 to SI."""
    o = STS_STATE_ADDR
    step = TWO_PI / resolution
    return ServoState(
        id=servo_id,
        position=(_sign_magnitude(_le(block, 56 - o, 2), 15) - resolution // 2) * step,
        velocity=_sign_magnitude(_le(block, 58 - o, 2), 15) * step,
        load=_sign_magnitude(_le(block, 60 - o, 2), 10) / 1000.0,
        current=_sign_magnitude(_le(block, 69 - o, 2), 15) * 0.0065,
        temperature=float(block[63 - o]),
        voltage=block[62 - o] / 10.0,
        faults=_faults(block[65 - o], _STS_FAULT_BITS),
        moving=bool(block[66 - o]),
    )


def rad_to_ticks(angle: float, resolution: int = 4096) -> int:
    return int(math.floor(angle * resolution / TWO_PI + 0.5)) + resolution // 2
