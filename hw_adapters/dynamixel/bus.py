"""`dynamixel:///dev/ttyUSB0?baud=1000000` — Dynamixel X servos over Protocol 2.0.

One read of every servo's state block per cycle, one sync write of Goal
Position (116) for every goal. A status with the hardware-alert bit makes the
bus read that servo's Hardware Error Status (70) too, so faults are reported
whatever block is read. URL options besides the serial ones:

  read=sync   (default) Sync Read (0x82): one status packet per servo
  read=fast   Fast Sync Read (0x8A): one combined status packet for all of them
              (11 bytes less per servo; a missing servo silences those after it)
  state=full  (default) registers 122..146: moving, PWM, current or load,
              velocity, position, voltage, temperature (25 bytes per servo)
  state=motion    128..135: velocity and position (8 bytes)
  state=position  132..135: position only (4 bytes)

A field the block does not read is NaN (velocity, load, temperature, voltage),
None (current) or False (moving); see servo_core.protocol.

`arm_watchdog` sets each servo's Bus Watchdog (98, in 20 ms units): armed with
torque on, a servo that hears no instruction for that long stops by itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from hw_adapters.base import BusError, ConfigError, OptionType, ServoState
from hw_adapters.dynamixel import protocol as dxl
from hw_adapters.serial_bus import SERIAL_OPTIONS, SerialServoBus, open_link
from hw_adapters.serial_link import SerialLink
from servo_core.protocol import DYNAMIXEL
from servo_core.units import WATCHDOG_UNIT_S, watchdog_units

__all__ = [
    "BUS_WATCHDOG",
    "DYNAMIXEL_OPTIONS",
    "DynamixelBus",
    "GOAL_POSITION",
    "HARDWARE_ERROR",
    "open_dynamixel_bus",
    "READ_MODES",
    "RETURN_DELAY",
    "TORQUE_ENABLE",
    "WATCHDOG_UNIT_S",
]

_TABLE = DYNAMIXEL.table
STATE_ADDR, STATE_LEN = DYNAMIXEL.state_address, DYNAMIXEL.state_length
GOAL_POSITION = DYNAMIXEL.goal.address
TORQUE_ENABLE = _TABLE["torque_enable"].address
HARDWARE_ERROR = _TABLE["hardware_error_status"].address
RETURN_DELAY = _TABLE["return_delay_time"].address
BUS_WATCHDOG = _TABLE["bus_watchdog"].address
_ALERT = 0x80
READ_MODES = ("sync", "fast")
DYNAMIXEL_OPTIONS: dict[str, OptionType] = {**SERIAL_OPTIONS, "read": str}


class DynamixelBus(SerialServoBus):
    protocol = DYNAMIXEL
    default_return_delay_s = 0.0005  # factory default: 250 x 2 us

    def __init__(
        self,
        link: SerialLink,
        *,
        retries: int = 2,
        fail_after: int = 5,
        read: str = "sync",
        state: str = "full",
    ) -> None:
        if read not in READ_MODES:
            raise ConfigError(f"read={read!r}: valid values are {', '.join(READ_MODES)}")
        super().__init__(link, retries=retries, fail_after=fail_after, state=state)
        self.read_mode = read

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
        encode = dxl.fast_sync_read if self.read_mode == "fast" else dxl.sync_read
        length = self.state_block.length
        return encode(self.state_address, length, ids), length

    def _read_blocks(self, ids: list[int]) -> dict[int, dxl.Packet]:
        packet, length = self._state_read(ids)
        expect = [(i, length) for i in ids]
        if self.read_mode == "sync":
            return self.transaction(packet, expect)
        n = len(ids)
        return self.transaction(
            packet,
            expect,
            parser=lambda: dxl.FastSyncReadParser(length, n),
            reply_bytes=dxl.fast_sync_read_reply_size(n, length),
        )

    def read_states(self, ids: Any) -> dict[int, ServoState]:
        start = time.perf_counter()
        try:
            ids = list(ids)
            self._ensure_known(ids)
            replies = self._read_blocks(ids)
            return {i: self._decode_state(i, replies[i]) for i in ids}
        finally:
            self._timed(start)

    def _decode_state(self, servo_id: int, reply: dxl.Packet) -> ServoState:
        error = 0
        if reply.error is not None and reply.error & _ALERT:  # alert bit: read what the alarm is
            read = dxl.read(servo_id, HARDWARE_ERROR, 1)
            error = self.transaction(read, [(servo_id, 1)])[servo_id].params[0]
        known = self.known[servo_id]
        return self.state_block.decode(servo_id, reply.params, error, known.model, known.resolution)

    def _goal_write(self, ticks: Mapping[int, int]) -> bytes:
        goal = DYNAMIXEL.goal
        return dxl.sync_write(GOAL_POSITION, goal.size, {i: goal.encode(t) for i, t in ticks.items()})

    def _torque_write(self, ids: list[int], enabled: bool) -> bytes:
        return dxl.sync_write(TORQUE_ENABLE, 1, {i: bytes([int(enabled)]) for i in ids})

    # -- Bus Watchdog (98) -------------------------------------------------------------------
    def arm_watchdog(self, ids: Iterable[int], timeout_s: float) -> bool:
        """Write Bus Watchdog = timeout_s in 20 ms units (the nearest), then read it back from every servo.

        ConfigError when timeout_s is outside 0.02..2.54 s; BusError when a servo does not
        answer or does not hold the value (one whose watchdog fired reads -1 until disarmed).
        """
        self._write_watchdog(list(ids), watchdog_units(timeout_s))
        return True

    def disarm_watchdog(self, ids: Iterable[int]) -> None:
        """Write Bus Watchdog = 0 (which also clears a watchdog that fired) and check it took."""
        self._write_watchdog(list(ids), 0)

    def _write_watchdog(self, ids: list[int], units: int) -> None:
        start = time.perf_counter()
        try:
            if not ids:
                return
            self._ensure_known(ids)
            self.transaction(dxl.sync_write(BUS_WATCHDOG, 1, {i: bytes([units]) for i in ids}), [])
            # A sync write gets no status: read the register back to know the servos took it.
            got = self.transaction(dxl.sync_read(BUS_WATCHDOG, 1, ids), [(i, 1) for i in ids])
            reg = _TABLE["bus_watchdog"]
            wrong = {i: reg.decode(got[i].params) for i in ids if got[i].params[0] != units}
            if wrong:
                raise BusError(f"bus watchdog: wrote {units}, servos read back {wrong} (-1: it had fired)")
        finally:
            self._timed(start)


def open_dynamixel_bus(url: str) -> DynamixelBus:
    link, opts = open_link(url, 1_000_000, DYNAMIXEL_OPTIONS)
    try:
        return DynamixelBus(
            link,
            retries=int(opts.get("retries", 2)),
            fail_after=int(opts.get("fail_after", 5)),
            read=str(opts.get("read", "sync")),
            state=str(opts.get("state", "full")),
        )
    except BaseException:
        link.close()
        raise
