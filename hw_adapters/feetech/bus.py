"""`feetech:///dev/ttyACM0?baud=1000000` — Feetech STS servos over the SCS protocol.

One sync read of the state block per cycle; one sync write of Goal Position
(42) for every goal. Values are little-endian, signed ones in sign-magnitude
form. `state=full` (default) reads 56..70 (Present Position .. Present
Current), `state=motion` 56..59 (position, speed), `state=position` 56..57;
alarms come from the status byte of every reply whatever the block.

The STS firmware has no communication watchdog: `arm_watchdog` returns False.
"""

from __future__ import annotations

from collections.abc import Mapping

from hw_adapters.base import ServoState
from hw_adapters.feetech import protocol as sts
from hw_adapters.serial_bus import SerialServoBus, open_link
from servo_core.protocol import FEETECH

__all__ = [
    "FeetechBus",
    "FIRMWARE",
    "GOAL_POSITION",
    "MODEL_NUMBER",
    "open_feetech_bus",
    "RETURN_DELAY",
    "TORQUE_ENABLE",
]

_TABLE = FEETECH.table
STATE_ADDR, STATE_LEN = FEETECH.state_address, FEETECH.state_length
GOAL_POSITION = FEETECH.goal.address
TORQUE_ENABLE = _TABLE["torque_enable"].address
MODEL_NUMBER = _TABLE["model_number"].address
FIRMWARE = _TABLE[FEETECH.firmware_register].address
RETURN_DELAY = _TABLE["return_delay_time"].address
_ALARMS = int(sum(sts.StatusBit))


class FeetechBus(SerialServoBus):
    protocol = FEETECH
    default_return_delay_s = 0.0

    def _new_parser(self) -> sts.PacketParser:
        return sts.PacketParser("status")

    def _raise_for_status(self, packet: sts.Packet) -> None:
        # Alarm bits (voltage, heat, load) arrive in every status; they are reported
        # through the state's faults, not raised. Only a refused instruction raises.
        if packet.error is not None and packet.error & ~_ALARMS:
            sts.raise_for_status(packet)

    def _ping_packet(self, servo_id: int) -> tuple[bytes, int]:
        return sts.ping(servo_id), FEETECH.ping_reply_params

    def _identify(self, servo_id: int, ping_reply: sts.Packet) -> tuple[int, int, float]:
        def register(address: int, length: int) -> bytes:
            return self.transaction(sts.read(servo_id, address, length), [(servo_id, length)])[
                servo_id
            ].params

        number = int.from_bytes(register(MODEL_NUMBER, 2), "little")
        return number, register(FIRMWARE, 1)[0], register(RETURN_DELAY, 1)[0] * 2e-6

    def _state_read(self, ids: list[int]) -> tuple[bytes, int]:
        length = self.state_block.length
        return sts.sync_read(self.state_address, length, ids), length

    def _decode_state(self, servo_id: int, reply: sts.Packet) -> ServoState:
        known = self.known[servo_id]
        alarms = (reply.error or 0) & _ALARMS
        return self.state_block.decode(servo_id, reply.params, alarms, known.model, known.resolution)

    def _goal_write(self, ticks: Mapping[int, int]) -> bytes:
        goal = FEETECH.goal
        return sts.sync_write(GOAL_POSITION, goal.size, {i: goal.encode(t) for i, t in ticks.items()})

    def _torque_write(self, ids: list[int], enabled: bool) -> bytes:
        return sts.sync_write(TORQUE_ENABLE, 1, {i: bytes([int(enabled)]) for i in ids})


def open_feetech_bus(url: str) -> FeetechBus:
    link, opts = open_link(url, 1_000_000)
    try:
        return FeetechBus(
            link,
            retries=int(opts.get("retries", 2)),
            fail_after=int(opts.get("fail_after", 5)),
            state=str(opts.get("state", "full")),
        )
    except BaseException:
        link.close()
        raise
