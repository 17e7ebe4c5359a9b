"""LeRobot 0.4.4's FeetechMotorsBus call sequences, register by register, against the emulator.

No LeRobot here: `LeRobotLikeHost` sends what FeetechMotorsBus sends for an SO-100/SO-101
follower (six STS3215, ids 1-6) through scservo_sdk, the SDK LeRobot drives: its connect
handshake (ping + Model_Number read per motor, firmware versions), its broadcast ping (one
PING to 0xFE, then 6-byte statuses read until a timeout), configure() of the SO follower, the
torque/Lock pairs of disable_torque/enable_torque, and calibration (reset_calibration,
set_half_turn_homings, record_ranges_of_motion with the joints moved "by hand", i.e. by an
external torque, write_calibration), then normalised Goal_Position sync writes the arm reaches.
The bad inputs get the emulator's refusal status (0x48: scservo_sdk names it "OverEle error!").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import scservo_sdk as scs

from hw_adapters.emulator.feetech import REFUSED, FeetechResponder
from hw_adapters.emulator.responder import BusDevices
from hw_adapters.feetech import protocol as sts
from servo_core.catalogue import servo_spec
from sim_models.servo.device import VirtualServo
from tests.servo_core.test_sts_table import LEROBOT_STS, twin_name

IDS = (1, 2, 3, 4, 5, 6)
NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
MOTORS = dict(zip(NAMES, IDS, strict=True))
STS3215 = 777
BAUD = 1_000_000
# LeRobot's sign-magnitude registers (its STS_SMS_SERIES_ENCODINGS_TABLE) and their sign bits.
SIGN_BITS = {
    "Homing_Offset": 11,
    "Goal_Position": 15,
    "Goal_Velocity": 15,
    "Present_Position": 15,
    "Present_Velocity": 15,
    "Present_Load": 10,
}
OVERELE = "[RxPacketError] OverEle error!"


class LeRobotLikeHost:
    """What FeetechMotorsBus puts on the wire, by register name, through scservo_sdk."""

    def __init__(self, port: Any) -> None:
        self.port = port
        self.ph = scs.PacketHandler(0)

    # -- single motor ------------------------------------------------------------------------
    def ping(self, motor_id: int) -> tuple[int, int, int]:
        model, comm, error = self.ph.ping(self.port, motor_id)
        return int(model), int(comm), int(error)

    def read(self, name: str, motor_id: int) -> tuple[int, int]:
        """(decoded value, status error); a failed exchange fails the test."""
        address, size = LEROBOT_STS[name]
        read = {1: self.ph.read1ByteTxRx, 2: self.ph.read2ByteTxRx}[size]
        raw, comm, error = read(self.port, motor_id, address)
        assert comm == scs.COMM_SUCCESS, self.ph.getTxRxResult(comm)
        if name in SIGN_BITS:
            return sts.decode_sign_magnitude(raw.to_bytes(size, "little"), SIGN_BITS[name]), int(error)
        return int(raw), int(error)

    def write(self, name: str, motor_id: int, value: int) -> int:
        """The status error of the write (LeRobot raises on a non-zero one)."""
        address, size = LEROBOT_STS[name]
        raw = self._encode(name, value, size)
        comm, error = self.ph.writeTxRx(self.port, motor_id, address, size, list(raw))
        assert comm == scs.COMM_SUCCESS, self.ph.getTxRxResult(comm)
        return int(error)

    def must_write(self, name: str, motor_id: int, value: int) -> None:
        error = self.write(name, motor_id, value)
        assert error == 0, f"{name}={value} on {motor_id}: {self.ph.getRxPacketError(error)}"

    @staticmethod
    def _encode(name: str, value: int, size: int) -> bytes:
        if name in SIGN_BITS:
            return sts.encode_sign_magnitude(value, SIGN_BITS[name], size)
        return value.to_bytes(size, "little")

    # -- several motors ----------------------------------------------------------------------
    def sync_read(self, name: str, ids: tuple[int, ...] = IDS) -> dict[int, int]:
        address, size = LEROBOT_STS[name]
        reader = scs.GroupSyncRead(self.port, self.ph, address, size)
        for i in ids:
            assert reader.addParam(i)
        comm = reader.txRxPacket()
        assert comm == scs.COMM_SUCCESS, self.ph.getTxRxResult(comm)
        out = {}
        for i in ids:
            assert reader.isAvailable(i, address, size)
            raw = int(reader.getData(i, address, size))
            bit = SIGN_BITS.get(name)
            out[i] = sts.decode_sign_magnitude(raw.to_bytes(size, "little"), bit) if bit else raw
        return out

    def sync_write(self, name: str, values: dict[int, int]) -> None:
        address, size = LEROBOT_STS[name]
        writer = scs.GroupSyncWrite(self.port, self.ph, address, size)
        for i, value in values.items():
            assert writer.addParam(i, list(self._encode(name, value, size)))
        assert writer.txPacket() == scs.COMM_SUCCESS

    def broadcast_ping(self) -> dict[int, int]:
        """LeRobot's _broadcast_ping: one PING to 0xFE, then every byte until the timeout,
        cut into 6-byte status packets: {id: error byte}."""
        packet = [0xFF, 0xFF, scs.BROADCAST_ID, 2, scs.INST_PING, 0]
        assert self.ph.txPacket(self.port, packet) == scs.COMM_SUCCESS
        self.port.setPacketTimeoutMillis(200)
        received: list[int] = []
        while not self.port.isPacketTimeout() and len(received) < 6 * scs.MAX_ID:
            received += self.port.readPort(6 * scs.MAX_ID - len(received))
        self.port.is_using = False
        found = {}
        for packet_ in sts.PacketParser("status").feed(bytes(received)):
            assert packet_.params == b"" and packet_.error is not None
            found[packet_.id] = packet_.error
        return found

    # -- FeetechMotorsBus operations -----------------------------------------------------------
    def disable_torque(self, ids: tuple[int, ...] = IDS) -> None:
        for i in ids:
            self.must_write("Torque_Enable", i, 0)
            self.must_write("Lock", i, 0)

    def enable_torque(self, ids: tuple[int, ...] = IDS) -> None:
        for i in ids:
            self.must_write("Torque_Enable", i, 1)
            self.must_write("Lock", i, 1)

    def configure_so_follower(self) -> None:
        """SOFollower.configure(): torque off (and unlocked) around the settings, then on."""
        self.disable_torque()
        for i in IDS:  # configure_motors()
            self.must_write("Return_Delay_Time", i, 0)
            self.must_write("Maximum_Acceleration", i, 254)
            self.must_write("Acceleration", i, 254)
        for name, i in MOTORS.items():
            self.must_write("Operating_Mode", i, 0)
            self.must_write("P_Coefficient", i, 16)
            self.must_write("I_Coefficient", i, 0)
            self.must_write("D_Coefficient", i, 32)
            if name == "gripper":
                self.must_write("Max_Torque_Limit", i, 500)
                self.must_write("Protection_Current", i, 250)
                self.must_write("Overload_Torque", i, 25)
        self.enable_torque()


# -- LeRobot's normalisation of Goal/Present_Position (RANGE_M100_100, gripper RANGE_0_100) --------
def normalize(name: str, ticks: int, lo: int, hi: int) -> float:
    bounded = min(hi, max(lo, ticks))
    if name == "gripper":
        return (bounded - lo) / (hi - lo) * 100
    return (bounded - lo) / (hi - lo) * 200 - 100


def unnormalize(name: str, value: float, lo: int, hi: int) -> int:
    if name == "gripper":
        return int(min(100.0, max(0.0, value)) / 100 * (hi - lo) + lo)
    return int((min(100.0, max(-100.0, value)) + 100) / 200 * (hi - lo) + lo)


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture
def arm(emulator) -> Iterator[tuple[LeRobotLikeHost, Any]]:
    """An SO-100/SO-101 follower: six emulated STS3215 on arm6, and a LeRobot-like host."""
    emu = emulator("feetech", "sts3215", "arm6")
    port = scs.PortHandler(emu.path)
    assert port.openPort() and port.setBaudRate(BAUD)
    try:
        yield LeRobotLikeHost(port), emu
    finally:
        port.closePort()


def on_server(emu: Any, fn: Callable[[], object]) -> None:
    """Run `fn` on the emulator's serving thread (as a fault does) and wait for it."""
    done: list[object] = []
    emu.server.call_soon(lambda: done.append(fn()))
    deadline = time.monotonic() + 2.0
    while not done:
        assert time.monotonic() < deadline, "the emulator did not run the call"
        time.sleep(0.002)


def hand(emu: Any, servo_id: int, torque_nm: float) -> Callable[[], None]:
    """A hand pushing joint `servo_id` with `torque_nm` (N·m); returns letting go."""
    undo: list[Callable[[], None]] = []

    def push() -> None:
        undo.append(emu.servo(servo_id).add_external_torque(torque_nm))

    on_server(emu, push)
    return lambda: on_server(emu, undo[0])


# -- the connect handshake and broadcast ping ---------------------------------------------------------
def test_connect_handshake_pings_and_reads_model_and_firmware(arm: tuple[LeRobotLikeHost, Any]) -> None:
    host, _ = arm
    for i in IDS:  # _assert_motors_exist: ping (which reads Model_Number at 3) per motor
        assert host.ping(i) == (STS3215, scs.COMM_SUCCESS, 0)
        assert host.read("Model_Number", i) == (STS3215, 0)
    versions = {
        i: (host.read("Firmware_Major_Version", i), host.read("Firmware_Minor_Version", i)) for i in IDS
    }
    assert set(versions.values()) == {((3, 0), (10, 0))}  # _assert_same_firmware: all "3.10"


def test_broadcast_ping_as_lerobot_implements_it(arm: tuple[LeRobotLikeHost, Any]) -> None:
    host, _ = arm
    assert host.broadcast_ping() == {i: 0 for i in IDS}
    # ... then _read_model_number of the ids found
    assert {i: host.read("Model_Number", i)[0] for i in IDS} == {i: STS3215 for i in IDS}


def test_status_packets_byte_exact() -> None:
    servos = {i: VirtualServo(servo_spec("sts3215"), i) for i in (1, 2)}
    responder = FeetechResponder(BusDevices(servos))
    # PING id 1 -> FF FF 01 02 00 FC; broadcast PING -> both, in id order.
    assert [r.packet for r in responder.feed(sts.ping(1))] == [bytes.fromhex("FF FF 01 02 00 FC")]
    assert [r.packet for r in responder.feed(sts.ping(sts.BROADCAST_ID))] == [
        bytes.fromhex("FF FF 01 02 00 FC"),
        bytes.fromhex("FF FF 02 02 00 FB"),
    ]
    # READ Model_Number: 09 03 (777); ~(1+4+0+9+3) = ~0x11 = 0xEE
    assert responder.feed(sts.read(1, 3, 2))[0].packet == bytes.fromhex("FF FF 01 04 00 09 03 EE")
    # WRITE Maximum_Acceleration (85) = 254: accepted.
    assert responder.feed(sts.write(1, 85, b"\xfe"))[0].packet == bytes.fromhex("FF FF 01 02 00 FC")
    # WRITE Operating_Mode 3 (step, not modelled): refused with 0x48; ~(1+2+0x48) = 0xB4
    assert responder.feed(sts.write(1, 33, b"\x03"))[0].packet == bytes.fromhex("FF FF 01 02 48 B4")
    # READ 2 bytes at 86: the last register (85 was written 254 above: 86 reads 0) and one
    # byte past the table: both bytes come back, 0 past the end, with 0x48.
    assert responder.feed(sts.read(2, 86, 2))[0].packet == bytes.fromhex("FF FF 02 04 48 00 00 B1")


# -- every register name ---------------------------------------------------------------------------
def test_every_lerobot_register_name_reads_with_data(arm: tuple[LeRobotLikeHost, Any]) -> None:
    host, emu = arm
    servo = emu.servo(3)
    for name in LEROBOT_STS:
        value, error = host.read(name, 3)
        assert error == 0, (name, host.ph.getRxPacketError(error))
        if not name.startswith(("Present_", "Moving")) or name.startswith("Moving_"):
            assert value == servo.peek(twin_name(name)), name
    reader = scs.GroupSyncRead(host.port, host.ph, 0, 87)  # the whole table in one sync read
    for i in IDS:
        reader.addParam(i)
    assert reader.txRxPacket() == scs.COMM_SUCCESS
    for i in IDS:
        assert reader.isAvailable(i, 85, 2)
        assert reader.getData(i, 3, 2) == STS3215


# -- configure(), torque and Lock ---------------------------------------------------------------------
def test_so_follower_configure_writes_every_setting(arm: tuple[LeRobotLikeHost, Any]) -> None:
    host, emu = arm
    host.configure_so_follower()
    for name, i in MOTORS.items():
        servo = emu.servo(i)
        assert servo.regs[7] == 0  # Return_Delay_Time
        assert (servo.regs[85], servo.regs[41]) == (254, 254)  # Maximum_Acceleration, Acceleration
        assert (servo.regs[33], servo.regs[21], servo.regs[23], servo.regs[22]) == (0, 16, 0, 32)
        gripper = name == "gripper"
        assert servo.regs[16:18] == (500 if gripper else 1000).to_bytes(2, "little")
        assert servo.regs[28:30] == (250 if gripper else 511).to_bytes(2, "little")
        assert servo.regs[36] == (25 if gripper else 80)
        assert (servo.regs[40], servo.regs[55]) == (1, 1)  # torque on, locked again
        assert servo.torque_enabled
        assert host.read("Max_Torque_Limit", i) == (500 if gripper else 1000, 0)


def test_configure_settings_were_saved_with_lock_0(arm: tuple[LeRobotLikeHost, Any]) -> None:
    from sim_models.servo.firmware import FeetechFirmware

    host, emu = arm
    host.configure_so_follower()
    gripper = emu.servo(6)
    on_server(emu, lambda: FeetechFirmware().power_cycle(gripper))
    assert host.read("Max_Torque_Limit", 6) == (500, 0)
    assert host.read("Torque_Limit", 6) == (500, 0)  # loaded from Max_Torque_Limit at power-on
    assert host.read("P_Coefficient", 6) == (16, 0)
    assert host.read("Lock", 6) == (1, 0)
    assert host.read("Torque_Enable", 6) == (0, 0)


def test_disable_and_enable_torque_pair_lock(arm: tuple[LeRobotLikeHost, Any]) -> None:
    host, emu = arm
    host.enable_torque()
    assert all(emu.servo(i).torque_enabled and emu.servo(i).peek("lock") == 1 for i in IDS)
    # EPROM writes with torque on are taken (torque does not guard the EPROM on Feetech).
    assert host.write("P_Coefficient", 1, 20) == 0
    host.disable_torque()
    assert all(not emu.servo(i).torque_enabled and emu.servo(i).peek("lock") == 0 for i in IDS)
    assert host.sync_read("Lock") == {i: 0 for i in IDS}


# -- calibration, then normalised goals ---------------------------------------------------------------
@pytest.mark.realtime
def test_calibration_then_normalized_goals_reach_the_arm(arm: tuple[LeRobotLikeHost, Any]) -> None:
    host, emu = arm
    # Pan, roll and gripper away from 2048; the rest of the arm upright (mid-range), held.
    host.enable_torque()
    host.sync_write("Goal_Position", {1: 2600, 5: 3000, 6: 2300})
    time.sleep(1.5)
    held = host.sync_read("Present_Position")
    assert abs(held[1] - 2600) <= 5 and abs(held[5] - 3000) <= 5 and abs(held[6] - 2300) <= 5

    # calibrate(): torque off (the user's hands hold the arm now), position mode, then at once
    # set_half_turn_homings: reset_calibration, sync read, Homing_Offset = position - 2047.
    host.disable_torque()
    for i in IDS:
        host.must_write("Operating_Mode", i, 0)
    for i in IDS:
        host.must_write("Homing_Offset", i, 0)
        host.must_write("Min_Position_Limit", i, 0)
        host.must_write("Max_Position_Limit", i, 4095)
    actual = host.sync_read("Present_Position")
    offsets = {i: actual[i] - 2047 for i in IDS}
    for i, offset in offsets.items():
        host.must_write("Homing_Offset", i, offset)
    present = host.sync_read("Present_Position")
    assert abs(present[1] - 2047) <= 1 and abs(present[5] - 2047) <= 1  # joints that stay put
    assert all(abs(present[i] - 2047) <= 10 for i in IDS), present  # the arm starts to sag
    assert emu.servo(1).regs[31:33] == offsets[1].to_bytes(2, "little")  # e.g. 552: 28 02
    assert host.read("Homing_Offset", 1) == (offsets[1], 0)

    # record_ranges_of_motion (all but wrist_roll), the joints moved "by hand".
    recorded = tuple(i for i in IDS if i != MOTORS["wrist_roll"])
    mins, maxes = dict(present), dict(present)
    for i in recorded:
        for push in (1.2, -1.2):
            let_go = hand(emu, i, push)
            until = time.monotonic() + 0.5
            while time.monotonic() < until:
                seen = host.sync_read("Present_Position", recorded)
                mins = {j: min(mins[j], seen.get(j, mins[j])) for j in mins}
                maxes = {j: max(maxes[j], seen.get(j, maxes[j])) for j in maxes}
            let_go()
    for i in recorded:
        assert mins[i] < 2047 - 50 and maxes[i] > 2047 + 50, (i, mins[i], maxes[i])
        assert mins[i] > 0 and maxes[i] < 4095  # homed at mid-range: no reading wrapped
    mins[MOTORS["wrist_roll"]], maxes[MOTORS["wrist_roll"]] = 0, 4095

    # write_calibration, then configure() and is_calibrated's read-back.
    for i in IDS:
        host.must_write("Homing_Offset", i, offsets[i])
        host.must_write("Min_Position_Limit", i, mins[i])
        host.must_write("Max_Position_Limit", i, maxes[i])
    host.configure_so_follower()
    for i in IDS:
        assert host.read("Homing_Offset", i) == (offsets[i], 0)
        assert host.read("Min_Position_Limit", i) == (mins[i], 0)
        assert host.read("Max_Position_Limit", i) == (maxes[i], 0)

    # get_observation / send_action: normalised positions, then normalised goals.
    ranges = {name: (mins[i], maxes[i]) for name, i in MOTORS.items()}
    start = host.sync_read("Present_Position")
    observed = {name: normalize(name, start[i], *ranges[name]) for name, i in MOTORS.items()}
    assert all(-100.0 <= v <= 100.0 for v in observed.values()), observed
    action = {name: (50.0 if name == "gripper" else 0.0) for name in NAMES}
    action["shoulder_pan"] = 20.0
    goals = {MOTORS[name]: unnormalize(name, value, *ranges[name]) for name, value in action.items()}
    host.sync_write("Goal_Position", goals)
    time.sleep(2.5)
    reached = host.sync_read("Present_Position")
    for name, i in MOTORS.items():
        assert abs(reached[i] - goals[i]) <= 40, (name, goals[i], reached[i])
        assert abs(normalize(name, reached[i], *ranges[name]) - action[name]) <= 5.0, name
    assert host.sync_read("Status") == {i: 0 for i in IDS}


# -- bad inputs -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Operating_Mode", 3),  # step mode: documented, not modelled by the twin
        ("Operating_Mode", 4),  # not a mode
        ("Lock", 2),
        ("ID", 254),
        ("Baud_Rate", 8),
        ("Torque_Limit", 1001),
        ("Torque_Enable", 128),  # "set centre": documented, not modelled
        ("Present_Position", 100),  # read-only
        ("Model_Number", 1),  # read-only
    ],
)
def test_bad_values_are_refused_with_a_named_status_error(
    arm: tuple[LeRobotLikeHost, Any], name: str, value: int
) -> None:
    host, emu = arm
    address, size = LEROBOT_STS[name]
    before = bytes(emu.servo(2).regs[address : address + size])
    error = host.write(name, 2, value)
    assert error == REFUSED == 0x48
    assert host.ph.getRxPacketError(error) == OVERELE
    if name == "Present_Position":
        assert host.read(name, 2) == (2048, 0)  # still the shaft's reading
    else:
        assert bytes(emu.servo(2).regs[address : address + size]) == before
    assert host.ping(2) == (STS3215, scs.COMM_SUCCESS, 0)  # the refusal is not an alarm


@pytest.mark.parametrize(
    ("address", "data"),
    [
        (43, [0x08]),  # the high byte of Goal_Position
        (41, [0x00, 0x00]),  # Acceleration and half of Goal_Position
        (50, [0x00]),  # no register there
        (87, [0x00]),  # past the table
    ],
)
def test_bad_spans_are_refused(arm: tuple[LeRobotLikeHost, Any], address: int, data: list[int]) -> None:
    host, emu = arm
    before = bytes(emu.servo(2).regs[:41])
    comm, error = host.ph.writeTxRx(host.port, 2, address, len(data), data)
    assert (comm, error) == (scs.COMM_SUCCESS, REFUSED)
    assert bytes(emu.servo(2).regs[:41]) == before


def test_goal_beyond_the_limits_is_clamped_not_refused(arm: tuple[LeRobotLikeHost, Any]) -> None:
    host, emu = arm
    host.disable_torque((4,))
    host.must_write("Max_Position_Limit", 4, 2300)
    host.enable_torque((4,))
    assert host.write("Goal_Position", 4, 3000) == 0
    assert host.read("Goal_Position", 4) == (2300, 0)


def test_reads_past_the_table_carry_data_and_the_refusal(arm: tuple[LeRobotLikeHost, Any]) -> None:
    host, _ = arm
    value, comm, error = host.ph.read2ByteTxRx(host.port, 1, 86)  # no IndexError in the SDK
    assert (value, comm, error) == (0, scs.COMM_SUCCESS, REFUSED)
    value, comm, error = host.ph.read1ByteTxRx(host.port, 1, 200)
    assert (value, comm, error) == (0, scs.COMM_SUCCESS, REFUSED)
    reader = scs.GroupSyncRead(host.port, host.ph, 85, 4)
    for i in IDS:
        reader.addParam(i)
    assert reader.txRxPacket() == scs.COMM_SUCCESS
    assert all(reader.getData(i, 85, 1) == 0 and reader.isAvailable(i, 85, 4) for i in IDS)
