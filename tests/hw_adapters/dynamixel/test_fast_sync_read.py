"""Fast Sync Read (0x8A) and the state blocks, from the bytes on the wire to ServoStates.

The servos are the emulator's own (DynamixelResponder over VirtualServos) behind a
ScriptedPort: no pty and no wall clock. Expected bytes follow the e-Manual's Protocol 2.0
page (Fast Sync Read: one status from id 0xFE, LEN 25 for three 4-byte reads), with a
bit-by-bit CRC written here independently of the table-driven one under test.
"""

from __future__ import annotations

import math

import pytest

from hw_adapters.base import ChecksumError, NoReplyError, ServoFault
from hw_adapters.dynamixel import protocol as dxl
from hw_adapters.dynamixel.bus import DynamixelBus
from hw_adapters.emulator.dynamixel import DynamixelResponder
from hw_adapters.emulator.responder import BusDevices
from hw_adapters.fake_port import ScriptedPort
from hw_adapters.serial_link import SerialLink
from servo_core.catalogue import servo_spec
from sim_models.servo.device import VirtualServo

IDS = (1, 2, 3)
TICK = 2.0 * math.pi / 4096


def ref_crc(data: bytes) -> int:
    """CRC-16, poly 0x8005, init 0, MSB first, no reflection, no final xor: one bit at a time."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def angle(servo_id: int) -> float:
    return 0.1 * servo_id - 0.25  # distinct per servo, both signs


class Rig:
    """XL430s answering through the emulator's responder on a scripted port."""

    def __init__(self, read: str = "fast", state: str = "full", ids: tuple[int, ...] = IDS) -> None:
        self.servos = {i: VirtualServo(servo_spec("xl430-w250"), i) for i in ids}
        for i, servo in self.servos.items():
            servo.step(angle(i), 0.5 * i, 0.001)  # torque off: the servo samples its shaft
        self.responder = DynamixelResponder(BusDevices(self.servos))
        self.replies: list[bytes] = []
        self.tamper = lambda reply: reply
        self.port = ScriptedPort(self.respond)
        link = SerialLink("fake", 1_000_000, open_port=self.port.open_port)
        self.bus = DynamixelBus(link, read=read, state=state, retries=1, fail_after=2)

    def respond(self, packet: bytes) -> bytes | None:
        reply = self.tamper(b"".join(r.packet for r in self.responder.feed(packet)))
        self.replies.append(reply)
        return reply or None


def test_the_bus_sends_a_fast_sync_read_of_the_state_block() -> None:
    expected = {"full": (122, 25), "motion": (128, 8), "position": (132, 4)}
    for state, (address, length) in expected.items():
        rig = Rig(state=state)
        rig.bus.read_states(IDS)
        # header | 0xFE | LEN = INST + 4 + 3 ids + CRC = 10 | 0x8A | address LE | length LE | ids | CRC
        head = bytes.fromhex("FF FF FD 00 FE 0A 00 8A") + address.to_bytes(2, "little")
        head += length.to_bytes(2, "little") + bytes(IDS)
        crc = ref_crc(head)
        assert rig.port.written[-1] == head + bytes([crc & 0xFF, crc >> 8]), state


def test_the_emulator_answers_one_status_with_a_block_per_servo() -> None:
    rig = Rig(state="position")
    rig.bus.read_states(IDS)
    reply = rig.replies[-1]
    # e-Manual example: three 4-byte reads make LEN 25 = INST + 3 x (ERR + ID + 4 data + CRC)
    assert reply[:8] == bytes.fromhex("FF FF FD 00 FE 19 00 55")
    assert len(reply) == 7 + 25 == dxl.fast_sync_read_reply_size(3, 4)
    for k, i in enumerate(IDS):
        at = 8 + 8 * k
        error, servo_id, data, crc = reply[at], reply[at + 1], reply[at + 2 : at + 6], reply[at + 6 : at + 8]
        assert (error, servo_id) == (0, i)
        assert int.from_bytes(data, "little", signed=True) == round(angle(i) / TICK) + 2048
        assert int.from_bytes(crc, "little") == ref_crc(reply[: at + 6])  # all bytes before it


def test_fast_and_sync_reads_decode_to_the_same_states() -> None:
    for state in ("full", "motion", "position"):
        fast = Rig("fast", state).bus.read_states(IDS)
        sync = Rig("sync", state).bus.read_states(IDS)
        for i in IDS:
            assert fast[i].position == pytest.approx(angle(i), abs=TICK)
            assert repr(fast[i]) == repr(sync[i])  # repr: NaN fields compare equal


def test_what_each_state_block_fills() -> None:
    full = Rig(state="full").bus.read_states([2])[2]
    motion = Rig(state="motion").bus.read_states([2])[2]
    position = Rig(state="position").bus.read_states([2])[2]
    assert motion.position == position.position == full.position
    assert motion.velocity == pytest.approx(full.velocity) and full.velocity == pytest.approx(1.0, abs=0.03)
    assert math.isnan(position.velocity)
    for partial in (motion, position):
        assert math.isnan(partial.temperature) and math.isnan(partial.voltage) and math.isnan(partial.load)
        assert partial.current is None and partial.moving is False
    assert full.temperature == 25.0 and full.voltage > 0


def test_faults_come_from_the_alert_bit_whatever_the_block() -> None:
    rig = Rig(state="position")
    rig.servos[2].force_overheat()
    states = rig.bus.read_states(IDS)
    assert states[2].faults == ServoFault.OVERHEAT
    assert states[1].faults == states[3].faults == ServoFault.NONE
    assert rig.replies[-2][8 + 8] & 0x80  # servo 2's block carried the alert bit
    assert dxl.decode_packet(rig.port.written[-1]).params == bytes([70, 0, 1, 0])  # then read 70 of it


def test_a_missing_servo_is_named_and_only_it_counts_a_miss() -> None:
    rig = Rig(state="position")
    rig.bus.read_states(IDS)  # all three known
    del rig.responder.devices.servos[2]  # unplugged
    with pytest.raises(NoReplyError, match=r"no reply from servo\(s\) \[2\].*\[3\] could not answer"):
        rig.bus.read_states(IDS)
    # The chain stops at the gap: servo 1's block and nothing more, under the LEN of all three.
    assert rig.replies[-1][:8] == bytes.fromhex("FF FF FD 00 FE 19 00 55") and len(rig.replies[-1]) == 16
    with pytest.raises(NoReplyError):
        rig.bus.read_states(IDS)
    assert rig.bus.stats.failed_servos == [2]  # fail_after 2: servo 3 was never blamed
    assert rig.bus.read_states([1, 3])[3].position == pytest.approx(angle(3), abs=TICK)


def test_a_corrupt_block_keeps_the_ones_before_it_and_is_a_checksum_error() -> None:
    rig = Rig(state="position")
    rig.bus.read_states(IDS)

    def flip(reply: bytes) -> bytes:
        return reply[:18] + bytes([reply[18] ^ 0x01]) + reply[19:]  # a data byte of servo 2

    rig.tamper = flip
    with pytest.raises(ChecksumError, match=r"corrupt reply from servo\(s\) \[2\]"):
        rig.bus.read_states(IDS)
    assert rig.bus.stats.retries == 1


def test_the_parser_takes_the_reply_in_any_pieces() -> None:
    blocks = [(i, 0, bytes([i, 0xFF, 0xFF, 0xFD])) for i in IDS]  # a header pattern in the data
    reply = b"".join(dxl.encode_fast_sync_status(blocks, len(IDS)))
    expected = [dxl.Packet(i, dxl.Instruction.STATUS, data, e) for i, e, data in blocks]
    for cut in range(len(reply) + 1):
        parser = dxl.FastSyncReadParser(4, 3)
        assert parser.feed(b"\x00\xff" + reply[:cut]) + parser.feed(reply[cut:]) == expected
        assert parser.pending == 0 and parser.crc_errors == 0
