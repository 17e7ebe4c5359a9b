"""The device side of Dynamixel Protocol 2.0: servos that answer instructions.

Status return level (register 68): 0 answers PING only, 1 PING and READ,
2 everything. Broadcast instructions get no status, except PING, SYNC READ and
BULK READ, which every addressed servo answers in turn, and FAST SYNC READ,
which they answer together in one status packet (each adds its block). Errors
come back in the status packet's error byte, as on a real servo.

A Fast Sync Read that lists an absent servo is answered up to it: the servos
after it wait for its block to continue the packet's CRC, and stay silent.

Error numbers (Protocol 2.0, e-Manual): Result Fail (1) for a CLEAR while the
servo moves; Instruction Error (2) for an unknown instruction or an ACTION with
nothing registered; CRC Error (3) for a whole packet to a servo whose CRC does
not match (answered at Status Return Level 2; a broadcast gets no status);
Data Range (4), Data Length (5), Data Limit (6) and Access (7) Errors for the
writes and reads the firmware refuses (sim_models.servo.firmware). The alert
bit (0x80) is set while Hardware Error Status is not 0.
"""

from __future__ import annotations

from hw_adapters.dynamixel import protocol as dxl
from hw_adapters.emulator.responder import BusDevices, ProtocolResponder, Reply
from sim_models.servo.device import RegisterError, VirtualServo
from sim_models.servo.firmware import DynamixelFirmware

__all__ = ["DynamixelResponder", "Inst"]

Inst = dxl.Instruction
Err = dxl.ErrorCode
# RegisterError kinds -> error numbers.
_ERROR_CODE = {
    "range": Err.DATA_RANGE_ERROR,
    "length": Err.DATA_LENGTH_ERROR,
    "limit": Err.DATA_LIMIT_ERROR,
    "access": Err.ACCESS_ERROR,
}
INSTRUCTION_ERROR, RESULT_FAIL, LENGTH_ERROR = Err.INSTRUCTION_ERROR, Err.RESULT_FAIL, Err.DATA_LENGTH_ERROR
_ALERT = dxl.ALERT


class DynamixelResponder(ProtocolResponder):
    broadcast_id = dxl.BROADCAST_ID
    malformed_error = LENGTH_ERROR

    def __init__(self, devices: BusDevices) -> None:
        parser = dxl.PacketParser()
        super().__init__(devices, parser)
        self._bad_crc: list[int] = []
        parser.on_crc_error = self._bad_crc.append

    def feed(self, data: bytes) -> list[Reply]:
        replies = super().feed(data)
        while self._bad_crc:
            servo = self.devices.servos.get(self._bad_crc.pop(0))
            if servo is not None and servo.peek("status_return_level") >= 2:
                self.devices.stats.refused += 1
                replies.append(self._status(servo, Err.CRC_ERROR))
        return replies

    def _not_an_instruction(self, packet: dxl.Packet) -> bool:
        return packet.instruction == Inst.STATUS  # another device's reply on the line

    # -- one servo ------------------------------------------------------------------
    def _unicast(self, servo: VirtualServo, p: dxl.Packet) -> list[Reply]:
        dev = self.devices
        level = servo.peek("status_return_level")
        inst = p.instruction
        if inst == Inst.PING:
            return [self._ping_reply(servo)]
        if inst == Inst.READ:
            address, length = dxl.parse_read(p.params)
            data = dev.read(servo, address, length)
            if isinstance(data, RegisterError):
                return self._refused_read(level >= 1, servo, data, length)
            return [self._status(servo, 0, data)] if level >= 1 else []
        if inst == Inst.WRITE:
            address, data = dxl.parse_write(p.params)
            error = dev.write(servo, address, data)
            return self._maybe(level >= 2, servo, _ERROR_CODE[error.kind] if error else 0)
        if inst == Inst.REG_WRITE:
            address, data = dxl.parse_write(p.params)
            dev.registered[p.id] = (address, data)
            servo.poke("registered_instruction", 1)
            return self._maybe(level >= 2, servo, 0)
        if inst == Inst.ACTION:
            if p.id not in dev.registered:  # ACTION with nothing registered
                return self._maybe(level >= 2, servo, INSTRUCTION_ERROR)
            dev.action(p.id)
            servo.poke("registered_instruction", 0)
            return self._maybe(level >= 2, servo, 0)
        if inst == Inst.CLEAR:
            return self._maybe(level >= 2, servo, self._clear(servo, p.params))
        if inst == Inst.REBOOT:
            servo.reboot()
            return self._maybe(level >= 2, servo, 0)
        if inst == Inst.FACTORY_RESET:
            servo.factory_reset()
            return self._maybe(level >= 2, servo, 0)
        dev.stats.refused += 1
        return self._maybe(level >= 2, servo, INSTRUCTION_ERROR)

    # -- every servo ------------------------------------------------------------------
    def _broadcast(self, p: dxl.Packet) -> list[Reply]:
        dev = self.devices
        inst = p.instruction
        if inst == Inst.PING:
            return [self._ping_reply(s) for s in dev.ordered()]
        if inst == Inst.SYNC_READ:
            address, length, ids = dxl.parse_sync_read(p.params)
            return self._reads([(i, address, length) for i in ids])
        if inst == Inst.FAST_SYNC_READ:
            return self._fast_reads(*dxl.parse_sync_read(p.params))
        if inst == Inst.BULK_READ:
            return self._reads(dxl.parse_bulk_read(p.params))
        if inst == Inst.SYNC_WRITE:
            address, _, data_by_id = dxl.parse_sync_write(p.params)
            for i, data in data_by_id.items():
                if i in dev.servos:
                    dev.write(dev.servos[i], address, data)
        elif inst == Inst.BULK_WRITE:
            for i, address, data in dxl.parse_bulk_write(p.params):
                if i in dev.servos:
                    dev.write(dev.servos[i], address, data)
        elif inst == Inst.WRITE:
            address, data = dxl.parse_write(p.params)
            for servo in dev.ordered():
                dev.write(servo, address, data)
        elif inst == Inst.ACTION:
            for servo in dev.ordered():
                if servo.servo_id in dev.registered:
                    servo.poke("registered_instruction", 0)
            dev.action(None)
        elif inst == Inst.REBOOT:
            for servo in dev.ordered():
                servo.reboot()
        elif inst == Inst.CLEAR:
            for servo in dev.ordered():
                self._clear(servo, p.params)
        return []

    @staticmethod
    def _clear(servo: VirtualServo, params: bytes) -> int:
        """CLEAR: 0x01 and its four fixed bytes reset the multi-turn count. The error number."""
        if len(params) != len(dxl.CLEAR_MULTI_TURN):
            return LENGTH_ERROR
        if params != dxl.CLEAR_MULTI_TURN:
            return Err.DATA_RANGE_ERROR
        firmware = servo.firmware
        if not isinstance(firmware, DynamixelFirmware) or not firmware.clear_turns(servo):
            return RESULT_FAIL  # it is moving
        return 0

    def _reads(self, items: list[tuple[int, int, int]]) -> list[Reply]:
        replies = []
        for i, address, length in items:
            servo = self.devices.servos.get(i)
            if servo is None:
                continue  # a real bus stays silent here; the host times out on it
            data = self.devices.read(servo, address, length)
            if isinstance(data, RegisterError):
                replies += self._refused_read(True, servo, data, length)
            else:
                replies.append(self._status(servo, 0, data))
        return replies

    def _fast_reads(self, address: int, length: int, ids: list[int]) -> list[Reply]:
        """One status packet for all `ids`: the first servo's chunk carries the header, each
        block is a chunk of its own that follows the one before (Reply.follows)."""
        blocks: list[tuple[int, int, bytes]] = []
        senders: list[VirtualServo] = []
        for i in ids:
            servo = self.devices.servos.get(i)
            if servo is None:
                break
            data = self.devices.read(servo, address, length)
            error = 0
            if isinstance(data, RegisterError):
                error, data = _ERROR_CODE[data.kind], bytes(length)
                self.devices.stats.refused += 1
            if servo.peek("hardware_error_status"):
                error |= _ALERT
            blocks.append((i, error, data))
            senders.append(servo)
        if not blocks:
            return []
        try:
            chunks = dxl.encode_fast_sync_status(blocks, len(ids))
        except ValueError:  # more data than one status packet can carry (LEN over 65535)
            self.devices.stats.refused += 1
            return [self._status(senders[0], LENGTH_ERROR, b"")]
        self.devices.stats.replies += len(blocks)
        return [Reply(s, c, follows=k > 0) for k, (s, c) in enumerate(zip(senders, chunks, strict=True))]

    # -- status packets ------------------------------------------------------------------
    def _ping_reply(self, servo: VirtualServo) -> Reply:
        model = servo.peek("model_number").to_bytes(2, "little")
        return self._status(servo, 0, model + bytes([servo.peek("firmware_version")]))

    def _refused_read(
        self, answer: bool, servo: VirtualServo, refusal: RegisterError, length: int
    ) -> list[Reply]:
        """The error status of a read: it carries `length` zero bytes where the data would be
        (as the blocks of a Fast Sync Read do), for hosts that take the data whatever the error
        (the SDK's read4ByteTxRx indexes it)."""
        self.devices.stats.refused += 1
        if not answer:
            return []
        padding = bytes(length) if length <= servo.table.size else b""
        return [self._status(servo, _ERROR_CODE[refusal.kind], padding)]

    def _maybe(self, answer: bool, servo: VirtualServo, error: int) -> list[Reply]:
        if error:
            self.devices.stats.refused += 1
        return [self._status(servo, error)] if answer else []

    def _status(self, servo: VirtualServo, error: int, params: bytes = b"") -> Reply:
        if servo.peek("hardware_error_status"):
            error |= _ALERT
        self.devices.stats.replies += 1
        return Reply(servo, dxl.encode_status(servo.servo_id, error, params))
