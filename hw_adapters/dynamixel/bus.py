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

from hw_adapters import wire
from hw_adapters.base import ServoState
from hw_adapters.dynamixel import protocol as dxl
from hw_adapters.serial_bus import SerialServoBus, open_link

STATE_ADDR, STATE_LEN = wire.DXL_STATE_ADDR, wire.DXL_STATE_LEN
GOAL_POSITION, TORQUE_ENABLE, HARDWARE_ERROR, RETURN_DELAY = 116, 64, 70, 9
_ALERT = 0x80


class DynamixelBus(SerialServoBus):
    protocol = "dynamixel"
    default_return_delay_s = 0.0005  # factory default: 250 x 2 us

    def _new_parser(self) -> dxl.PacketParser:
        return dxl.PacketParser()

    def _status_size(self, n_params: int) -> int:
        # Unstuffed size; a reply lengthened by byte stuffing is completed by the
        # transaction, which reads what the packet's length field says is missing.
        return wire.status_size("dynamixel", n_params)

    def _raise_for_status(self, packet: dxl.Packet) -> None:
        dxl.raise_for_status(packet)

    def _ping_packet(self, servo_id: int) -> tuple[bytes, int]:
        return dxl.ping(servo_id), 3

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
                out[i] = wire.decode_dxl_state(i, replies[i].params, error, self.known[i].model)
            return out
        finally:
            self._timed(start)

    def _decode_state(self, servo_id: int, params: bytes) -> ServoState:
        return wire.decode_dxl_state(servo_id, params, 0, self.known[servo_id].model)

    def _goal_write(self, ticks: Mapping[int, int]) -> bytes:
        return dxl.sync_write(
            GOAL_POSITION, 4, {i: t.to_bytes(4, "little", signed=True) for i, t in ticks.items()}
        )

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
