"""The device side of the Feetech SCS/STS protocol: servos that answer instructions.

Response status level (register 8): 0 answers PING and READ only, 1 everything.
Broadcast instructions get no status, except SYNC READ, which every addressed
servo answers in turn (and PING, which every servo answers: meaningful with one
servo on the line only, as Feetech's protocol says, but LeRobot's broadcast ping
sends it and reads the replies one after the other).

The status byte is the servo's Status register (65): its alarm bits (input voltage,
angle sensor, overheat, over-current, overload). Feetech documents no bit for a
refused instruction (real servos acknowledge what they do not take), so the emulator
marks one with REFUSED: bit 3, the bit the packet format's origin (Dynamixel Protocol
1.0) gives to "range error" and that scservo_sdk names ("OverEle error!"), so a host
such as LeRobot reports a reason, together with bit 6 (EMULATOR_REFUSED, unused by
Feetech), which tells a refusal from a real over-current alarm. Refused: a read or write
outside the memory table, a write to an address no register covers, one that covers part
of a multi-byte register, to a read-only register, or of a value outside the register's
documented range or in a mode the twin does not model (Operating Mode 3, step). A refused
READ still carries as many data bytes as were asked for (0 outside the table), so an SDK
that reads them before the status byte does not fail on a short packet.
"""

from __future__ import annotations

from hw_adapters.emulator.responder import BusDevices, ProtocolResponder, Reply
from hw_adapters.feetech import protocol as sts
from sim_models.servo.device import RegisterError, VirtualServo

__all__ = ["FeetechResponder", "Inst", "REFUSED"]

Inst = sts.Instruction
REFUSED = sts.EMULATOR_REFUSED | int(sts.StatusBit.OVER_CURRENT)  # 0x48


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
            return [self._read(servo, address, length)]
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
            return [self._read(dev.servos[i], address, length) for i in ids if i in dev.servos]
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
        elif inst == Inst.PING:  # every servo answers, in id order
            return [self._status(s, 0) for s in dev.ordered()]
        return []

    def _read(self, servo: VirtualServo, address: int, length: int) -> Reply:
        """The status answering a read: the data, or as many bytes of it as the table holds
        (0 past its end, at most a packet's worth) with REFUSED."""
        data = self.devices.read(servo, address, length)
        if not isinstance(data, RegisterError):
            return self._status(servo, 0, data)
        self.devices.stats.refused += 1
        size = servo.table.size
        inside = b""
        if 0 <= address < size:
            held = self.devices.read(servo, address, min(length, size - address))
            inside = held if isinstance(held, bytes) else b""
        length = min(length, sts.MAX_PARAMS)  # what one status packet can carry
        return self._status(servo, REFUSED, (inside + bytes(length))[:length])

    def _status(self, servo: VirtualServo, error: int, params: bytes = b"") -> Reply:
        error |= servo.read_register("hardware_error_status")
        self.devices.stats.replies += 1
        return Reply(servo, sts.encode_status(servo.servo_id, error, params))
