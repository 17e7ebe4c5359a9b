"""`dynamixel:///dev/ttyUSB0?baud=1000000` — Dynamixel X servos over Protocol 2.0.

One sync read of registers 122..146 (Moving .. Present Temperature) per
cycle for every servo's state, one sync write of Goal Position (116) for
every goal. A status packet with the hardware-alert bit makes the bus read
that servo's Hardware Error Status (70) too.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from hw_adapters.base import ServoState
from hw_adapters.dynamixel import protocol as dxl
from hw_adapters.serial_bus import SerialServoBus, open_link
from servo_core.protocol import DYNAMIXEL

__all__ = [
    "DynamixelBus",
    "GOAL_POSITION",
    "HARDWARE_ERROR",
    "open_dynamixel_bus",
    "RETURN_DELAY",
    "TORQUE_ENABLE",
]

_TABLE = DYNAMIXEL.table
STATE_ADDR, STATE_LEN = DYNAMIXEL.state_address, DYNAMIXEL.state_length
GOAL_POSITION = DYNAMIXEL.goal.address
TORQUE_ENABLE = _TABLE["torque_enable"].address
HARDWARE_ERROR = _TABLE["hardware_error_status"].address
RETURN_DELAY = _TABLE["return_delay_time"].address
_ALERT = 0x80


class DynamixelBus(SerialServoBus):
    protocol = DYNAMIXEL
    default_return_delay_s = 0.0005  # factory default: 250 x 2 us

    def _new_parser(self) -> dxl.PacketParser:
        return dxl.PacketParser()

    def _raise_for_status(self, packet: dxl.Packet) -> None:
        dxl.raise_for_status(packet)

    def _ping_packet(self, servo_id: int) -> tuple[bytes, int]:
        return dxl.ping(servo_id), DYNAMIXEL.ping_reply_params

    def _identify(self, servo_id: int, ping_reply: dxl.Packet) -> tuple[int, int, float]:
        params = ping_reply.params
        number = int.from_bytes(params[0:2], "little")
        firmware = params[2] if len(params) > 2 else 0
        delay = self.transaction(dxl.read(servo_id, RETURN_DELAY, 1), [(servo_id, 1)])[servo_id].params[0]
        return number, firmware, delay * 2e-6

    def _state_read(self, ids: list[int]) -> tuple[bytes, int]:
        return dxl.sync_read(STATE_ADDR, STATE_LEN, ids), STATE_LEN

    def read_states(self, ids: Any) -> dict[int, ServoState]:
        start = time.perf_counter()
        try:
            ids = list(ids)
            self._ensure_known(ids)
            packet, length = self._state_read(ids)
            replies = self.transaction(packet, [(i, length) for i in ids])
            out = {}
            for i in ids:
                error = 0
                if replies[i].error & _ALERT:  # alert bit: read what the alarm is
                    read = dxl.read(i, HARDWARE_ERROR, 1)
                    error = self.transaction(read, [(i, 1)])[i].params[0]
                known = self.known[i]
                out[i] = DYNAMIXEL.decode(i, replies[i].params, error, known.model, known.resolution)
            return out
        finally:
            self._timed(start)

    def _decode_state(self, servo_id: int, params: bytes) -> ServoState:
        known = self.known[servo_id]
        return DYNAMIXEL.decode(servo_id, params, 0, known.model, known.resolution)

    def _goal_write(self, ticks: Mapping[int, int]) -> bytes:
        goal = DYNAMIXEL.goal
        return dxl.sync_write(GOAL_POSITION, goal.size, {i: goal.encode(t) for i, t in ticks.items()})

    def _torque_write(self, ids: list[int], enabled: bool) -> bytes:
        return dxl.sync_write(TORQUE_ENABLE, 1, {i: bytes([int(enabled)]) for i in ids})


def open_dynamixel_bus(url: str) -> DynamixelBus:
    link, opts = open_link(url, 1_000_000)
    try:
        return DynamixelBus(
            link, retries=int(opts.get("retries", 2)), fail_after=int(opts.get("fail_after", 5))
        )
    except BaseException:
        link.close()
        raise
