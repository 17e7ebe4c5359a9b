"""The device side of Dynamixel Protocol 2.0: servos that answer instructions.

Status return level (register 68): 0 answers PING only, 1 PING and READ,
2 everything. Broadcast instructions get no status, except PING, SYNC READ and
BULK READ, which every addressed servo answers in turn, and FAST SYNC READ,
which they answer together in one status packet (each adds its block). Errors
come back in the status packet's error byte, as on a real servo.

A Fast Sync Read that lists an absent servo is answered up to it: the servos
after it wait for its block to continue the packet's CRC, and stay silent.
"""

from __future__ import annotations

from hw_adapters.dynamixel import protocol as dxl
from hw_adapters.emulator.responder import BusDevices, ProtocolResponder, Reply
from sim_models.servo.device import RegisterError, VirtualServo

__all__ = ["DynamixelResponder", "Inst"]

Inst = dxl.Instruction
_ERROR_CODE = {"range": 4, "access": 7, "limit": 6}  # data range, access, data limit
INSTRUCTION_ERROR, RESULT_FAIL, LENGTH_ERROR = 2, 1, 5
_ALERT = 0x80


class DynamixelResponder(ProtocolResponder):
    broadcast_id = dxl.BROADCAST_ID
    malformed_error = LENGTH_ERROR

    def __init__(self, devices: BusDevices) -> None:
        super().__init__(devices, dxl.PacketParser())

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
                return self._maybe(level >= 1, servo, _ERROR_CODE[data.kind])
            return [self._status(servo, 0, data)] if level >= 1 else []
        if inst == Inst.WRITE:
            address, data = dxl.parse_write(p.params)
            error = dev.write(servo, address, data)
            return self._maybe(level >= 2, servo, _ERROR_CODE[error.kind] if error else 0)
        if inst == Inst.REG_WRITE:
            address, data = dxl.parse_write(p.params)
            dev.registered[p.id] = (address, data)
            return self._maybe(level >= 2, servo, 0)
        if inst == Inst.ACTION:
            dev.action(p.id)
            return self._maybe(level >= 2, servo, 0)
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
            dev.action(None)
        elif inst == Inst.REBOOT:
            for servo in dev.ordered():
                servo.reboot()
        return []

    def _reads(self, items: list[tuple[int, int, int]]) -> list[Reply]:
        replies = []
        for i, address, length in items:
            servo = self.devices.servos.get(i)
            if servo is None:
                continue  # a real bus stays silent here; the host times out on it
            data = self.devices.read(servo, address, length)
            if isinstance(data, RegisterError):
                replies.append(self._status(servo, _ERROR_CODE[data.kind]))
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
        self.devices.stats.replies += len(blocks)
        chunks = dxl.encode_fast_sync_status(blocks, len(ids))
        return [Reply(s, c, follows=k > 0) for k, (s, c) in enumerate(zip(senders, chunks, strict=True))]

    # -- status packets ------------------------------------------------------------------
    def _ping_reply(self, servo: VirtualServo) -> Reply:
        model = servo.peek("model_number").to_bytes(2, "little")
        return self._status(servo, 0, model + bytes([servo.peek("firmware_version")]))

    def _maybe(self, answer: bool, servo: VirtualServo, error: int) -> list[Reply]:
        if error:
            self.devices.stats.refused += 1
        return [self._status(servo, error)] if answer else []

    def _status(self, servo: VirtualServo, error: int, params: bytes = b"") -> Reply:
        if servo.peek("hardware_error_status"):
            error |= _ALERT
        self.devices.stats.replies += 1
        return Reply(servo, dxl.encode_status(servo.servo_id, error, params))
