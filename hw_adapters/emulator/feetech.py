"""The device side of the Feetech SCS/STS protocol: servos that answer instructions.

Response status level (register 8): 0 answers PING and READ only, 1 everything.
Broadcast instructions get no status, except SYNC READ, which every addressed
servo answers in turn. The status byte carries the servo's alarm bits. A
refused instruction (a read-only register, a value out of range) sets bit 6,
which the STS documentation leaves unused: real firmware drops such writes
silently, and a flag a host can see is more useful in a test rig.
"""

from __future__ import annotations

from hw_adapters.emulator.responder import BusDevices, ProtocolResponder, Reply
from hw_adapters.feetech import protocol as sts
from sim_models.servo.device import RegisterError, VirtualServo

__all__ = ["FeetechResponder", "Inst", "REFUSED"]

Inst = sts.Instruction
REFUSED = 0x40


class FeetechResponder(ProtocolResponder):
    broadcast_id = sts.BROADCAST_ID
    malformed_error = REFUSED

    def __init__(self, devices: BusDevices) -> None:
        super().__init__(devices, sts.PacketParser("instruction"))

    def _unicast(self, servo: VirtualServo, p: sts.Packet) -> list[Reply]:
        dev = self.devices
        answer_all = servo.peek("status_return_level") >= 1
        inst = p.instruction
        if inst == Inst.PING:
            return [self._status(servo, 0)]
        if inst == Inst.READ:
            address, length = sts.parse_read(p.params)
            data = dev.read(servo, address, length)
            if isinstance(data, RegisterError):
                dev.stats.refused += 1
                return [self._status(servo, REFUSED)]
            return [self._status(servo, 0, data)]
        if inst == Inst.WRITE:
            address, data = sts.parse_write(p.params)
            error = dev.write(servo, address, data)
            if error:
                dev.stats.refused += 1
            return [self._status(servo, REFUSED if error else 0)] if answer_all else []
        if inst == Inst.REG_WRITE:
            dev.registered[p.id] = sts.parse_write(p.params)
            return [self._status(servo, 0)] if answer_all else []
        if inst == Inst.ACTION:
            dev.action(p.id)
            return [self._status(servo, 0)] if answer_all else []
        dev.stats.refused += 1
        return [self._status(servo, REFUSED)] if answer_all else []

    def _broadcast(self, p: sts.Packet) -> list[Reply]:
        dev = self.devices
        inst = p.instruction
        if inst == Inst.SYNC_READ:
            address, length, ids = sts.parse_sync_read(p.params)
            replies = []
            for i in ids:
                servo = dev.servos.get(i)
                if servo is None:
                    continue
                data = dev.read(servo, address, length)
                if isinstance(data, RegisterError):
                    replies.append(self._status(servo, REFUSED))
                else:
                    replies.append(self._status(servo, 0, data))
            return replies
        if inst == Inst.SYNC_WRITE:
            address, _, data_by_id = sts.parse_sync_write(p.params)
            for i, data in data_by_id.items():
                if i in dev.servos:
                    dev.write(dev.servos[i], address, data)
        elif inst == Inst.WRITE:
            address, data = sts.parse_write(p.params)
            for servo in dev.ordered():
                dev.write(servo, address, data)
        elif inst == Inst.ACTION:
            dev.action(None)
        elif inst == Inst.PING:  # only meaningful with one servo on the line
            return [self._status(s, 0) for s in dev.ordered()]
        return []

    def _status(self, servo: VirtualServo, error: int, params: bytes = b"") -> Reply:
        error |= servo.read_register("hardware_error_status")
        self.devices.stats.replies += 1
        return Reply(servo, sts.encode_status(servo.servo_id, error, params))
