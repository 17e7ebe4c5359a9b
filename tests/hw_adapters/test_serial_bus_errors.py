"""SerialServoBus error paths, Dynamixel and Feetech alike, against servos scripted on a ScriptedPort.

Each test builds the bus directly (`SerialLink("fake", ..., open_port=port.open_port)`) over a small
scripted servo set that decodes every instruction with the vendor's codec and answers as a servo
would; a `tamper` hook then corrupts, truncates, drops or misroutes the replies a test names.
"""

from __future__ import annotations

import errno
import math
import struct
from collections.abc import Callable, Iterable

import pytest
import serial

from hw_adapters.base import (
    BusError,
    ChecksumError,
    ConfigError,
    NoReplyError,
    ServoFault,
    StatusError,
    WrongIdError,
)
from hw_adapters.dynamixel import protocol as dxl
from hw_adapters.dynamixel.bus import DynamixelBus
from hw_adapters.fake_port import ScriptedPort
from hw_adapters.feetech import protocol as sts
from hw_adapters.feetech.bus import FeetechBus
from hw_adapters.serial_bus import SerialServoBus, ServoFailedError
from hw_adapters.serial_link import SerialLink

VENDORS = ["dynamixel", "feetech"]
PORT_NAME = "fake"
BAUD = 1_000_000
TORQUE_ADDR = {"dynamixel": 64, "feetech": 40}
PROTO = {"dynamixel": dxl, "feetech": sts}

# A tamper hook: (instruction, [(id, status bytes)] the servos would send) -> what reaches the port.
Tamper = Callable[[int, list[tuple[int, bytes]]], bytes | Exception | None]


def position_ticks(servo_id: int) -> int:
    return 2048 + 100 * servo_id  # distinct per servo; no FF bytes in it


class FakeServos:
    """Servos on one ScriptedPort. Subclasses speak a protocol; the attributes below script faults."""

    def __init__(self, ids: Iterable[int], *, return_delay: int = 0) -> None:
        self.ids = set(ids)
        self.return_delay = return_delay  # the raw Return Delay Time register (units of 2 us)
        self.status_error: dict[int, int] = {}  # ERR byte of an id's sync-read statuses
        self.alarm_register: dict[int, int] = {}  # Hardware Error Status (DXL 70) / status (STS 65)
        self.answer_as: dict[int, int] = {}  # an id whose statuses carry another id
        self.silent: set[int] = set()  # ids that stop answering anything
        self.tamper: Tamper | None = None
        self.requests: list[int] = []  # instruction of every packet written
        self.port = ScriptedPort(self.respond)

    def respond(self, packet: bytes) -> bytes | Exception | None:
        instruction, replies = self.answer(packet)
        self.requests.append(instruction)
        replies = [(i, r) for i, r in replies if i not in self.silent]
        if self.tamper is not None:
            return self.tamper(instruction, replies)
        return b"".join(r for _, r in replies)

    def answer(self, packet: bytes) -> tuple[int, list[tuple[int, bytes]]]:
        raise NotImplementedError

    def sync_read_count(self) -> int:
        return self.requests.count(self.SYNC_READ)

    SYNC_READ = 0x82


class DxlServos(FakeServos):
    MODEL, FIRMWARE = 1020, 45  # XM430-W350

    def status(self, servo_id: int, error: int, params: bytes = b"") -> tuple[int, bytes]:
        return servo_id, dxl.encode_status(self.answer_as.get(servo_id, servo_id), error, params)

    @staticmethod
    def block(servo_id: int) -> bytes:
        # 122 moving, pwm, current, velocity, position, (7 unused), input voltage, temperature
        return struct.pack("<BxhhiixxxxxxxxHB", 0, 0, 0, 0, position_ticks(servo_id), 120, 30)

    def answer(self, packet: bytes) -> tuple[int, list[tuple[int, bytes]]]:
        p = dxl.decode_packet(packet)
        if p.instruction == dxl.Instruction.PING:
            ident = self.MODEL.to_bytes(2, "little") + bytes([self.FIRMWARE])
            return p.instruction, [self.status(p.id, 0, ident)] if p.id in self.ids else []
        if p.instruction == dxl.Instruction.READ:
            address, length = dxl.parse_read(p.params)
            registers = {9: self.return_delay, 70: self.alarm_register.get(p.id, 0)}
            assert length == 1 and address in registers, (address, length)
            return p.instruction, [
                self.status(p.id, 0, bytes([registers[address]]))
            ] if p.id in self.ids else []
        if p.instruction == dxl.Instruction.SYNC_READ:
            address, length, ids = dxl.parse_sync_read(p.params)
            assert (address, length) == (122, 25)
            return p.instruction, [
                self.status(i, self.status_error.get(i, 0), self.block(i)) for i in ids if i in self.ids
            ]
        assert p.instruction == dxl.Instruction.SYNC_WRITE, p
        return p.instruction, []


class StsServos(FakeServos):
    MODEL, FIRMWARE = 777, 3  # STS3215

    def status(self, servo_id: int, error: int, params: bytes = b"") -> tuple[int, bytes]:
        return servo_id, sts.encode_status(self.answer_as.get(servo_id, servo_id), error, params)

    def block(self, servo_id: int) -> bytes:
        # 56 position, speed, load, voltage, temperature, (61), status, moving, (67, 68), current
        alarm = self.alarm_register.get(servo_id, 0)
        return struct.pack("<HHHBBxBBxxH", position_ticks(servo_id), 0, 0, 120, 30, alarm, 0, 0)

    def answer(self, packet: bytes) -> tuple[int, list[tuple[int, bytes]]]:
        p = sts.decode_instruction(packet)
        assert p.instruction is not None
        if p.instruction == sts.Instruction.PING:
            return p.instruction, [self.status(p.id, 0)] if p.id in self.ids else []
        if p.instruction == sts.Instruction.READ:
            address, length = sts.parse_read(p.params)
            registers = {
                (3, 2): self.MODEL.to_bytes(2, "little"),
                (0, 1): bytes([self.FIRMWARE]),
                (7, 1): bytes([self.return_delay]),
            }
            data = registers[(address, length)]
            return p.instruction, [self.status(p.id, 0, data)] if p.id in self.ids else []
        if p.instruction == sts.Instruction.SYNC_READ:
            address, length, ids = sts.parse_sync_read(p.params)
            assert (address, length) == (56, 15)
            return p.instruction, [
                self.status(i, self.status_error.get(i, 0), self.block(i)) for i in ids if i in self.ids
            ]
        assert p.instruction == sts.Instruction.SYNC_WRITE, p
        return p.instruction, []


def make(
    vendor: str,
    ids: Iterable[int] = (1, 2, 3),
    *,
    retries: int = 2,
    fail_after: int = 3,
    return_delay: int = 0,
    **link_options: float,
) -> tuple[SerialServoBus, FakeServos]:
    servos: FakeServos = (DxlServos if vendor == "dynamixel" else StsServos)(ids, return_delay=return_delay)
    link = SerialLink(PORT_NAME, BAUD, open_port=servos.port.open_port, **link_options)
    bus_cls = DynamixelBus if vendor == "dynamixel" else FeetechBus
    return bus_cls(link, retries=retries, fail_after=fail_after), servos


def identified(vendor: str, ids: Iterable[int] = (1, 2, 3), **kwargs) -> tuple[SerialServoBus, FakeServos]:
    """A bus whose servos have answered a ping (and the identify reads), stats still clean."""
    bus, servos = make(vendor, ids, **kwargs)
    assert [info.id for info in bus.scan(sorted(servos.ids))] == sorted(servos.ids)
    assert bus.stats.retries == bus.stats.no_reply == bus.stats.checksum_errors == 0
    return bus, servos


def corrupt(reply: bytes) -> bytes:
    """The reply with its CRC / checksum byte flipped (last byte of the packet)."""
    return reply[:-1] + bytes([reply[-1] ^ 0x5A])


def only_on_sync_read(change: Callable[[list[tuple[int, bytes]]], bytes | Exception | None]) -> Tamper:
    def tamper(instruction: int, replies: list[tuple[int, bytes]]) -> bytes | Exception | None:
        if instruction == FakeServos.SYNC_READ:
            return change(replies)
        return b"".join(r for _, r in replies)

    return tamper


def joined(replies: list[tuple[int, bytes]]) -> bytes:
    return b"".join(r for _, r in replies)


# -- corrupt replies -----------------------------------------------------------------------------
@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("which", [0, 1, 2])
def test_a_corrupt_reply_once_is_retried_and_the_read_succeeds(vendor: str, which: int) -> None:
    bus, servos = identified(vendor)
    left = [1]

    def change(replies: list[tuple[int, bytes]]) -> bytes:
        if left[0]:
            left[0] -= 1
            replies = [(i, corrupt(r) if n == which else r) for n, (i, r) in enumerate(replies)]
        return joined(replies)

    servos.tamper = only_on_sync_read(change)
    states = bus.read_states([1, 2, 3])
    assert sorted(states) == [1, 2, 3]
    for i, state in states.items():
        assert state.position == pytest.approx(100 * i * 2 * math.pi / 4096)
    assert servos.sync_read_count() == 2
    assert bus.stats.retries == 1
    assert bus.stats.checksum_errors >= 1
    assert bus.stats.no_reply == 1  # the corrupt attempt missed one servo
    assert bus.stats.failed_servos == []


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("retries", [0, 1, 2, 4])
def test_a_reply_corrupt_every_time_raises_checksum_error_after_all_attempts(
    vendor: str, retries: int
) -> None:
    bus, servos = identified(vendor, retries=retries, fail_after=10)
    servos.tamper = only_on_sync_read(lambda replies: joined([(i, corrupt(r)) for i, r in replies]))
    before = len(servos.port.written)
    with pytest.raises(ChecksumError, match=r"corrupt reply from servo\(s\) \[1, 2, 3\] on fake"):
        bus.read_states([1, 2, 3])
    assert len(servos.port.written) - before == 1 + retries
    assert servos.sync_read_count() == 1 + retries
    assert bus.stats.retries == retries
    assert bus.stats.checksum_errors == 3 * (1 + retries)


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_corrupt_ping_reply_means_not_found(vendor: str) -> None:
    bus, servos = make(vendor, [4])
    servos.tamper = lambda instruction, replies: joined([(i, corrupt(r)) for i, r in replies])
    before = len(servos.port.written)
    assert bus.ping(4) is None
    assert len(servos.port.written) - before == 1  # a ping is never retried
    assert bus.stats.checksum_errors == 1
    assert 4 not in bus.known


# -- missing, partial and stray replies ------------------------------------------------------
@pytest.mark.parametrize("vendor", VENDORS)
def test_no_reply_raises_no_reply_error_after_the_retries(vendor: str) -> None:
    bus, servos = identified(vendor, retries=2, fail_after=10)
    servos.silent = {2}
    before = len(servos.port.written)
    with pytest.raises(NoReplyError, match=r"from servo\(s\) \[2\] on fake"):
        bus.read_states([1, 2, 3])
    assert len(servos.port.written) - before == 3
    assert bus.stats.no_reply == 3 and bus.stats.retries == 2
    assert bus.stats.checksum_errors == 0 and bus.stats.wrong_id == 0


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_silent_servo_among_answering_ones_is_not_called_a_partial_reply(vendor: str) -> None:
    bus, servos = identified(vendor, [1, 2, 3], fail_after=10)
    servos.silent = {2}
    with pytest.raises(NoReplyError) as info:
        bus.read_states([1, 2, 3])
    assert "only part" not in str(info.value)
    assert str(info.value) == "no reply from servo(s) [2] on fake"


@pytest.mark.parametrize("vendor", VENDORS)
def test_nothing_on_the_line_says_no_reply(vendor: str) -> None:
    bus, servos = identified(vendor, [5], fail_after=10)
    servos.silent = {5}
    with pytest.raises(NoReplyError, match=r"^no reply from servo\(s\) \[5\] on fake$"):
        bus.read_states([5])
    assert servos.sync_read_count() == 3


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("cut", [1, 3, 10])
def test_a_truncated_status_raises_no_reply_error_saying_only_part(vendor: str, cut: int) -> None:
    bus, servos = identified(vendor, [1], fail_after=10)
    servos.tamper = only_on_sync_read(lambda replies: joined(replies)[:-cut])
    before = len(servos.port.written)
    with pytest.raises(NoReplyError, match=r"only part of a reply from servo\(s\) \[1\] on fake"):
        bus.read_states([1])
    assert len(servos.port.written) - before == 3
    assert bus.stats.no_reply == 3


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_truncated_status_once_is_retried(vendor: str) -> None:
    bus, servos = identified(vendor, [1, 2])
    left = [1]

    def change(replies: list[tuple[int, bytes]]) -> bytes:
        data = joined(replies)
        if left[0]:
            left[0] -= 1
            return data[:-4]
        return data

    servos.tamper = only_on_sync_read(change)
    assert sorted(bus.read_states([1, 2])) == [1, 2]
    assert bus.stats.retries == 1 and bus.stats.no_reply == 1


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_reply_from_the_wrong_id_raises_wrong_id_error(vendor: str) -> None:
    bus, servos = identified(vendor, [1, 2], fail_after=10)
    servos.answer_as = {2: 7}
    before = len(servos.port.written)
    with pytest.raises(WrongIdError, match=r"id 7, not from \[1, 2\]"):
        bus.read_states([1, 2])
    assert len(servos.port.written) - before == 3
    assert bus.stats.wrong_id == 3
    assert bus.stats.retries == 2


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_stray_status_after_the_expected_ones_is_left_unread_and_cleared(vendor: str) -> None:
    bus, servos = identified(vendor, [1, 2])
    extra = DxlServos([9]) if vendor == "dynamixel" else StsServos([9])
    stray = extra.status(9, 0, extra.block(9))[1]
    servos.tamper = only_on_sync_read(lambda replies: joined(replies) + stray)
    assert sorted(bus.read_states([1, 2])) == [1, 2]
    assert servos.port.pending == stray  # only the expected bytes are read
    resets = servos.port.input_resets
    servos.tamper = None
    assert sorted(bus.read_states([1, 2])) == [1, 2]
    assert servos.port.input_resets == resets + 1 and servos.port.pending == b""
    assert bus.stats.wrong_id == 0 and bus.stats.retries == 0


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_stray_status_in_place_of_a_wanted_one_is_counted_as_wrong_id(vendor: str) -> None:
    bus, servos = identified(vendor, [1, 2])
    left = [1]

    def change(replies: list[tuple[int, bytes]]) -> bytes:
        if left[0]:
            left[0] -= 1
            other = DxlServos([9]) if vendor == "dynamixel" else StsServos([9])
            replies = [replies[0], other.status(9, 0, other.block(9))]
        return joined(replies)

    servos.tamper = only_on_sync_read(change)
    assert sorted(bus.read_states([1, 2])) == [1, 2]
    assert bus.stats.wrong_id == 1 and bus.stats.retries == 1


@pytest.mark.parametrize("vendor", VENDORS)
def test_one_missed_reply_in_ten_never_breaks_a_run_of_cycles(vendor: str) -> None:
    bus, servos = identified(vendor, [1, 2, 3], retries=2, fail_after=3)
    drop: list[int] = []

    def change(replies: list[tuple[int, bytes]]) -> bytes:
        if drop:
            gone = drop.pop()
            replies = [(i, r) for i, r in replies if i != gone]
        return joined(replies)

    servos.tamper = only_on_sync_read(change)
    for cycle in range(100):
        if cycle % 10 == 0:
            drop.append(1 + (cycle // 10) % 3)
        states = bus.read_states([1, 2, 3])
        assert sorted(states) == [1, 2, 3]
        bus.write_goals({1: 0.1, 2: -0.1, 3: 0.0})
    assert servos.sync_read_count() == 110
    assert bus.stats.retries == 10
    assert bus.stats.no_reply == 10
    assert bus.stats.failed_servos == []


# -- status error codes -------------------------------------------------------------------------
def test_dynamixel_data_range_error_raises_status_error_with_id_and_code() -> None:
    bus, servos = identified("dynamixel", [1, 2])
    servos.status_error = {2: 0x04}
    before = len(servos.port.written)
    with pytest.raises(StatusError, match="data range error") as info:
        bus.read_states([1, 2])
    assert info.value.servo_id == 2
    assert info.value.code == 0x04
    assert str(info.value).startswith("servo 2:")
    assert len(servos.port.written) - before == 1  # an error code is an answer: no retry
    assert bus.stats.status_errors == 1 and bus.stats.retries == 0
    servos.status_error = {}
    assert sorted(bus.read_states([1, 2])) == [1, 2]  # not marked failed


def test_dynamixel_error_code_with_the_alert_bit_names_both() -> None:
    bus, servos = identified("dynamixel", [3])
    servos.status_error = {3: 0x84}
    with pytest.raises(StatusError, match=r"data range error \(hardware alert set\)") as info:
        bus.read_states([3])
    assert (info.value.servo_id, info.value.code) == (3, 0x04)


@pytest.mark.parametrize("alarm", [0x01, 0x04, 0x20, 0x2D])
def test_feetech_alarm_bits_are_faults_not_errors(alarm: int) -> None:
    bus, servos = identified("feetech", [1, 2])
    servos.status_error = {2: alarm}
    servos.alarm_register = {2: alarm}
    states = bus.read_states([1, 2])
    assert states[1].faults == ServoFault.NONE
    expected = {0x01: ServoFault.INPUT_VOLTAGE, 0x04: ServoFault.OVERHEAT, 0x20: ServoFault.OVERLOAD}
    if alarm in expected:
        assert states[2].faults == expected[alarm]
    else:  # 0x2D = overload | over-current | overheat | input voltage
        for fault in (ServoFault.OVERLOAD, ServoFault.ELECTRICAL_SHOCK, ServoFault.OVERHEAT):
            assert fault in states[2].faults
        assert ServoFault.INPUT_VOLTAGE in states[2].faults
    assert bus.stats.status_errors == 0


@pytest.mark.parametrize("code", [0x40, 0x60, 0x10, 0x80])
def test_feetech_error_bits_outside_the_alarms_raise_status_error(code: int) -> None:
    bus, servos = identified("feetech", [1, 2])
    servos.status_error = {1: code}
    before = len(servos.port.written)
    with pytest.raises(StatusError, match=f"status error 0x{code:02X}") as info:
        bus.read_states([1, 2])
    assert info.value.servo_id == 1
    assert info.value.code == code
    assert len(servos.port.written) - before == 1
    assert bus.stats.status_errors == 1


@pytest.mark.parametrize(("register", "faults"), [(0x04, ServoFault.OVERHEAT), (0x24, ServoFault(0x24))])
def test_dynamixel_hardware_alert_reads_hardware_error_status(register: int, faults: ServoFault) -> None:
    bus, servos = identified("dynamixel", [1, 2, 3])
    servos.status_error = {2: 0x80}
    servos.alarm_register = {2: register}
    before = len(servos.port.written)
    states = bus.read_states([1, 2, 3])
    assert ServoFault.OVERHEAT in states[2].faults
    assert states[2].faults == faults
    assert states[1].faults == states[3].faults == ServoFault.NONE
    assert states[2].position == pytest.approx(200 * 2 * math.pi / 4096)
    assert servos.port.written[before:] == [
        dxl.sync_read(122, 25, [1, 2, 3]),
        dxl.read(2, 70, 1),  # Hardware Error Status of the alerting servo only
    ]
    assert bus.stats.status_errors == 0


# -- a servo that keeps failing -------------------------------------------------------------
@pytest.mark.parametrize("vendor", VENDORS)
def test_a_servo_failing_fail_after_times_is_marked_failed(vendor: str) -> None:
    bus, servos = identified(vendor, [1, 2, 3], retries=2, fail_after=3)
    servos.silent = {2}
    for n in range(3):
        assert bus.stats.failed_servos == []
        before = len(servos.port.written)
        with pytest.raises(NoReplyError):
            bus.read_states([1, 2, 3])
        assert len(servos.port.written) - before == 3, f"transaction {n + 1}"
    assert bus.stats.failed_servos == [2]

    before = len(servos.port.written)
    with pytest.raises(ServoFailedError, match=r"\[2\]") as info:
        bus.read_states([1, 2, 3])
    assert isinstance(info.value, BusError)
    assert info.value.servo_ids == [2]
    with pytest.raises(ServoFailedError) as info:
        bus.write_goals({1: 0.0, 2: 0.5})
    assert info.value.servo_ids == [2]
    assert len(servos.port.written) == before  # neither touched the port

    states = bus.read_states([1, 3])
    assert sorted(states) == [1, 3]
    bus.write_goals({1: 0.0, 3: 0.0})
    assert len(servos.port.written) == before + 2
    assert bus.stats.failed_servos == [2]


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_success_between_failures_resets_the_count(vendor: str) -> None:
    bus, servos = identified(vendor, [1, 2], retries=0, fail_after=2)
    for _ in range(3):
        servos.silent = {2}
        with pytest.raises(NoReplyError):
            bus.read_states([1, 2])
        servos.silent = set()
        bus.read_states([1, 2])
    assert bus.stats.failed_servos == []


# -- losing the port, closing ---------------------------------------------------------------
LOSSES = {
    "fail": lambda servos: servos.port.fail(serial.SerialException("device reports readiness to read")),
    "respond-oserror": lambda servos: setattr(
        servos, "tamper", only_on_sync_read(lambda replies: OSError(errno.EIO, "Input/output error"))
    ),
}


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("how", sorted(LOSSES))
def test_losing_the_port_mid_run_raises_bus_error_and_close_is_quiet(vendor: str, how: str) -> None:
    bus, servos = identified(vendor, [1, 2])
    bus.set_torque([1, 2], True)
    for _ in range(3):
        bus.read_states([1, 2])
        bus.write_goals({1: 0.0, 2: 0.0})
    LOSSES[how](servos)
    with pytest.raises(BusError, match=r"serial port fake was lost: ") as info:
        bus.read_states([1, 2])
    assert not isinstance(info.value, NoReplyError | ServoFailedError)
    if how == "respond-oserror":
        assert "Input/output error" in str(info.value)
    written = len(servos.port.written)
    bus.close()
    bus.close()
    assert len(servos.port.written) == written  # nothing more could be sent
    assert not servos.port.is_open
    with pytest.raises(BusError):
        bus.read_states([1])
    with pytest.raises(BusError):
        bus.write_goals({1: 0.0})


@pytest.mark.parametrize("vendor", VENDORS)
def test_losing_the_port_before_a_write_raises_bus_error(vendor: str) -> None:
    bus, servos = identified(vendor, [1])
    servos.port.fail(OSError(errno.ENXIO, "No such device or address"))
    with pytest.raises(BusError, match="serial port fake was lost: No such device or address"):
        bus.write_goals({1: 0.0})
    bus.close()


@pytest.mark.parametrize("vendor", VENDORS)
def test_close_on_a_port_lost_since_the_last_transaction_does_not_raise(vendor: str) -> None:
    bus, servos = identified(vendor, [1, 2])
    bus.set_torque([1], True)
    servos.port.fail(serial.SerialException("device disconnected"))
    bus.close()  # the torque-off write fails: swallowed
    assert not servos.port.is_open
    with pytest.raises(BusError, match="closed"):
        bus.read_states([1])


@pytest.mark.parametrize("vendor", VENDORS)
def test_close_turns_torque_off_on_every_servo_touched(vendor: str) -> None:
    bus, servos = identified(vendor, [1, 2, 3])
    bus.set_torque([1, 5], True)  # 5 was never pinged, yet was touched
    bus.read_states([1, 2, 3])
    before = len(servos.port.written)
    bus.close()
    proto = PROTO[vendor]
    touched = [1, 2, 3, 5]
    assert servos.port.written[before:] == [
        proto.sync_write(TORQUE_ADDR[vendor], 1, dict.fromkeys(touched, b"\0"))
    ]
    decode = dxl.decode_packet if vendor == "dynamixel" else sts.decode_instruction
    packet = decode(servos.port.written[-1])
    assert packet.instruction == proto.Instruction.SYNC_WRITE
    assert packet.id == proto.BROADCAST_ID
    address, length, data = proto.parse_sync_write(packet.params)
    assert (address, length) == (TORQUE_ADDR[vendor], 1)
    assert data == dict.fromkeys(touched, b"\x00")
    assert not servos.port.is_open
    bus.close()
    assert len(servos.port.written) == before + 1
    with pytest.raises(BusError, match=f"the {vendor} bus on fake is closed"):
        bus.read_states([1])


@pytest.mark.parametrize("vendor", VENDORS)
def test_close_with_nothing_touched_writes_nothing(vendor: str) -> None:
    bus, servos = make(vendor)
    bus.close()
    assert servos.port.written == []
    assert not servos.port.is_open


# -- goal validation ------------------------------------------------------------------------
BAD_GOALS = [math.nan, math.inf, -math.inf, math.pi, 3.5, -3.2, -math.pi - 1e-9, 1e300]


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("goal", BAD_GOALS, ids=repr)
def test_a_bad_goal_raises_config_error_and_writes_nothing(vendor: str, goal: float) -> None:
    bus, servos = identified(vendor, [1, 2])
    before = len(servos.port.written)
    with pytest.raises(ConfigError, match="servo 2: goal"):
        bus.write_goals({1: 0.0, 2: goal})
    with pytest.raises(ConfigError, match="servo 1: goal"):
        bus.write_goals({1: goal})
    assert len(servos.port.written) == before


@pytest.mark.parametrize("vendor", VENDORS)
def test_goals_at_the_ends_of_the_range_are_written(vendor: str) -> None:
    bus, servos = identified(vendor, [1, 2])
    bus.write_goals({1: -math.pi, 2: math.nextafter(math.pi, 0.0)})
    proto = PROTO[vendor]
    decode = dxl.decode_packet if vendor == "dynamixel" else sts.decode_instruction
    address, length, data = proto.parse_sync_write(decode(servos.port.written[-1]).params)
    assert address == (116 if vendor == "dynamixel" else 42)
    ticks = {i: int.from_bytes(d, "little", signed=True) for i, d in data.items()}
    assert ticks == {1: 0, 2: 4095}


# -- timeouts -----------------------------------------------------------------------------------
def test_feetech_sync_read_of_six_reads_with_the_wire_time_plus_latency_and_margin() -> None:
    ids = [1, 2, 3, 4, 5, 6]
    bus, servos = identified("feetech", ids, return_delay=0)
    reads = len(servos.port.read_timeouts)
    bus.read_states(ids)
    request = servos.port.written[-1]
    # SYNC_READ: FF FF FE LEN 82 | 38 0F id*6 | CHK = 6 + 2 + 6 = 14 bytes.
    # Each status: FF FF id LEN ERR | 15 bytes | CHK = 21 bytes; 6 of them = 126.
    # 140 bytes x 10 bits at 1 Mbps = 1.4 ms; no return delay; 2 ms latency; 2 ms margin.
    assert len(request) == 14
    assert servos.port.read_timeouts[reads:] == [pytest.approx(0.0014 + 0.002 + 0.002, abs=1e-12)]


def test_feetech_sync_read_timeout_adds_every_return_delay() -> None:
    ids = [1, 2, 3, 4, 5, 6]
    bus, servos = identified("feetech", ids, return_delay=10, latency_s=0.001, margin_s=0.0005)
    bus.read_states(ids)
    # 140 bytes = 1.4 ms; 6 x 10 x 2 us = 120 us; 1 ms latency; 0.5 ms margin.
    assert servos.port.read_timeouts[-1] == pytest.approx(0.0014 + 0.00012 + 0.001 + 0.0005, abs=1e-12)


def test_dynamixel_sync_read_of_six_reads_with_the_wire_time_delays_latency_and_margin() -> None:
    ids = [1, 2, 3, 4, 5, 6]
    bus, servos = identified("dynamixel", ids, return_delay=250, latency_s=0.001, margin_s=0.003)
    bus.read_states(ids)
    # SYNC_READ: 10 + (addr 2 + len 2 + 6 ids) = 20 bytes; each status 11 + 25 = 36 bytes, 216 in all.
    # 236 bytes = 2.36 ms; 6 x 250 x 2 us = 3 ms of return delay; 1 ms latency; 3 ms margin.
    assert len(servos.port.written[-1]) == 20
    assert servos.port.read_timeouts[-1] == pytest.approx(0.00236 + 0.003 + 0.001 + 0.003, abs=1e-12)


# -- last_duration_s ------------------------------------------------------------------------
OPERATIONS: dict[str, Callable[[SerialServoBus], object]] = {
    "ping": lambda bus: bus.ping(1),
    "ping-absent": lambda bus: bus.ping(9),
    "scan": lambda bus: bus.scan([1, 2, 9]),
    "read_states": lambda bus: bus.read_states([1, 2]),
    "write_goals": lambda bus: bus.write_goals({1: 0.25, 2: -0.25}),
    "set_torque": lambda bus: bus.set_torque([1, 2], True),
}


def _duration_cases() -> list:
    cases = []
    for vendor in VENDORS:
        for op in OPERATIONS:
            cases.append(pytest.param(vendor, op, id=f"{vendor}-{op}"))
    return cases


@pytest.mark.parametrize(("vendor", "op"), _duration_cases())
def test_last_duration_is_set_after_each_operation(vendor: str, op: str) -> None:
    bus, _ = identified(vendor, [1, 2])
    for _ in range(2):
        bus.last_duration_s = -1.0
        OPERATIONS[op](bus)
        assert 0.0 <= bus.last_duration_s < 1.0


@pytest.mark.parametrize(
    "vendor",
    ["dynamixel", "feetech"],
)
def test_last_duration_is_set_after_a_failed_read(vendor: str) -> None:
    bus, servos = identified(vendor, [1, 2], fail_after=10)
    servos.silent = {2}
    bus.last_duration_s = -1.0
    with pytest.raises(NoReplyError):
        bus.read_states([1, 2])
    assert 0.0 <= bus.last_duration_s < 1.0


def test_a_reply_lengthened_by_byte_stuffing_is_read_whole() -> None:
    """A state block holding FF FF FD is sent stuffed (one byte longer than its plain size)."""
    from hw_adapters.dynamixel import protocol as dxl
    from hw_adapters.dynamixel.bus import DynamixelBus
    from hw_adapters.fake_port import ScriptedPort
    from hw_adapters.serial_link import SerialLink

    block = bytes([0, 0, 0xFF, 0xFF, 0xFD, 0xFF]) + bytes(19)  # PWM -1, then FF FD in the current

    def servo(packet: bytes) -> bytes:
        p = dxl.decode_packet(packet)
        if p.instruction == dxl.Instruction.PING:
            return dxl.encode_status(p.id, 0, (1060).to_bytes(2, "little") + bytes([52]))
        if p.instruction == dxl.Instruction.READ:
            return dxl.encode_status(p.id, 0, bytes([250]))
        if p.instruction == dxl.Instruction.SYNC_READ:
            return b"".join(dxl.encode_status(i, 0, block) for i in (1, 2))
        return b""

    port = ScriptedPort(servo)
    bus = DynamixelBus(SerialLink("fake", 1_000_000, open_port=port.open_port), retries=0)
    states = bus.read_states([1, 2])
    assert set(states) == {1, 2}
    assert len(dxl.encode_status(2, 0, block)) == 11 + 25 + 1, "the reply really is stuffed"
