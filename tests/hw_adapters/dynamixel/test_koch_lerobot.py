"""LeRobot's Koch arms against the emulator, through the vendor's dynamixel_sdk.

`KochBus` below issues, register by register, the SDK calls LeRobot 0.4's DynamixelMotorsBus
makes for a Koch follower (KochFollower: XL430-W250 ids 1-2, XL330-M288 ids 3-6) and a Koch
leader (KochLeader: XL330-M077 ids 1-6): the handshake (a ping per motor), read_calibration
(sync reads of Homing_Offset 20, Min/Max_Position_Limit 52/48, Drive_Mode 10), calibrate()
(torque off, Operating_Mode 4, reset_calibration, set_half_turn_homings, the range
recording, write_calibration), configure() (Return_Delay_Time 0, Operating_Mode 4 for the
arm and 5 for the gripper, the elbow's PID, torque on) and the control loop (sync read of
Present_Position 132, sync write of Goal_Position 116). No LeRobot import: the sequences
are written here from its source. The arm is on the built-in `koch` robot, without gravity
(the operator holds it while calibrating). Bad input gets the Protocol 2.0 error numbers,
which the SDK names.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dynamixel_sdk as sdk
import pytest

from hw_adapters.dynamixel import protocol as dxl
from hw_adapters.emulator import EmulatorServer
from hw_adapters.emulator.dynamixel import DynamixelResponder
from hw_adapters.emulator.responder import BusDevices
from servo_core.catalogue import servo_spec
from sim_models.servo.device import VirtualServo

pytestmark = pytest.mark.realtime

# (id, model, joint, supply V), as KochFollower and KochLeader name them.
FOLLOWER = (
    (1, "xl430-w250", "shoulder_pan", 12.0),
    (2, "xl430-w250", "shoulder_lift", 12.0),
    (3, "xl330-m288", "elbow_flex", 5.0),
    (4, "xl330-m288", "wrist_flex", 5.0),
    (5, "xl330-m288", "wrist_roll", 5.0),
    (6, "xl330-m288", "gripper", 5.0),
)
LEADER = tuple((i, "xl330-m077", joint, 5.0) for i, _, joint, _ in FOLLOWER)
MODEL_NUMBERS = {"xl430-w250": 1060, "xl330-m288": 1200, "xl330-m077": 1190}  # as LeRobot's table
FULL_TURN = ("shoulder_pan", "wrist_roll")  # LeRobot records no range for these

# The e-Manual's X series table, the registers LeRobot uses: (address, bytes).
ADDRESS = {
    "Model_Number": (0, 2),
    "Return_Delay_Time": (9, 1),
    "Drive_Mode": (10, 1),
    "Operating_Mode": (11, 1),
    "Homing_Offset": (20, 4),
    "Current_Limit": (38, 2),
    "Max_Position_Limit": (48, 4),
    "Min_Position_Limit": (52, 4),
    "Torque_Enable": (64, 1),
    "Position_D_Gain": (80, 2),
    "Position_I_Gain": (82, 2),
    "Position_P_Gain": (84, 2),
    "Goal_Current": (102, 2),
    "Goal_Position": (116, 4),
    "Present_PWM": (124, 2),
    "Present_Current": (126, 2),
    "Present_Position": (132, 4),
}
SIGNED = {
    "Homing_Offset",
    "Goal_Current",
    "Goal_Position",
    "Present_PWM",
    "Present_Current",
    "Present_Position",
}
EXTENDED_POSITION, CURRENT_POSITION = 4, 5
TICKS_PER_RAD = 4096 / (2 * math.pi)
START_TIMEOUT_S = 30.0
SETTLE_S = 1.5
# With every core busy the emulator (a Python thread of this process) answers tens of ms late,
# which a real servo does not: the SDK's port waits this much longer than its ~34 ms.
LOADED_MARGIN_MS = 200.0


class LoadedPort(sdk.PortHandler):
    """The SDK's PortHandler with a longer wait for status packets (see LOADED_MARGIN_MS)."""

    def setPacketTimeout(self, packet_length: int) -> None:  # noqa: N802 (the SDK's name)
        super().setPacketTimeout(packet_length)
        self.packet_timeout += LOADED_MARGIN_MS


# -- an emulator serving a Koch arm -------------------------------------------------------------
class Koch:
    """A running emulator of a Koch arm: its link, and a way to act on its plant."""

    def __init__(self, path: str, server: EmulatorServer) -> None:
        self.path, self.server = path, server

    def servo(self, servo_id: int) -> VirtualServo:
        return self.server.devices.servos[servo_id]

    def on_plant(self, action: Callable[[Any], None]) -> None:
        """Run `action(plant)` on the serving thread (between two instructions) and wait for it."""
        done = threading.Event()

        def run() -> None:
            try:
                action(self.server.plant)
            finally:
                done.set()

        self.server.call_soon(run)
        assert done.wait(5.0), "the emulator did not run the action"


@contextlib.contextmanager
def koch_emulator(tmp_path: Path, arm: tuple[tuple[int, str, str, float], ...]) -> Iterator[Koch]:
    ready, stop = threading.Event(), threading.Event()
    box: dict[str, Any] = {}

    def serve() -> None:  # PyBullet lives in this thread: built, stepped and closed here
        from sim_models.plant import Mount, Plant
        from sim_models.robots import robot_urdf_text

        plant = None
        try:
            mounts = [Mount(joint, VirtualServo(servo_spec(model), i, v)) for i, model, joint, v in arm]
            plant = Plant(robot_urdf_text("koch"), mounts, gravity=0.0)
            server = EmulatorServer(plant, "dynamixel")
            try:
                server.link(tmp_path / "koch")
                box["server"] = server
                ready.set()
                server.serve(stop)
            finally:
                server.close()
        except BaseException as exc:
            box["error"] = exc
        finally:
            if plant is not None:
                plant.close()
            ready.set()

    thread = threading.Thread(target=serve, name="koch-emulator", daemon=True)
    thread.start()
    assert ready.wait(START_TIMEOUT_S), "the emulator did not start"
    if "server" not in box:
        raise RuntimeError("the emulator failed to start") from box.get("error")
    try:
        yield Koch(str(tmp_path / "koch"), box["server"])
    finally:
        stop.set()
        thread.join(10.0)
    assert not thread.is_alive()
    assert "error" not in box, box.get("error")


# -- LeRobot's call sequences, through the vendor SDK ----------------------------------------------
def _encode(name: str, value: int, size: int) -> int:
    return value & ((1 << (8 * size)) - 1) if name in SIGNED else value


def _decode(name: str, value: int, size: int) -> int:
    if name in SIGNED and value >= 1 << (8 * size - 1):
        value -= 1 << (8 * size)
    return value


def _bytes(value: int, size: int) -> list[int]:
    return list(value.to_bytes(size, "little"))


class KochBus:
    """The SDK calls DynamixelMotorsBus makes, one method per LeRobot operation."""

    def __init__(self, path: str, arm: tuple[tuple[int, str, str, float], ...]) -> None:
        self.ids = {joint: i for i, _, joint, _ in arm}
        self.models = {joint: model for _, model, joint, _ in arm}
        self.port = LoadedPort(path)
        self.ph = sdk.PacketHandler(2.0)
        self.reader = sdk.GroupSyncRead(self.port, self.ph, 0, 0)
        self.writer = sdk.GroupSyncWrite(self.port, self.ph, 0, 0)

    # connect(): open the port, the handshake (a ping per motor, model numbers checked), the timeout.
    def connect(self) -> dict[str, int]:
        assert self.port.openPort()
        found = {}
        for joint, i in self.ids.items():
            model, result, error = self.ph.ping(self.port, i)
            assert result == sdk.COMM_SUCCESS and error == 0, (joint, self.ph.getTxRxResult(result))
            found[joint] = model
        self.port.setPacketTimeoutMillis(1000)
        return found

    def close(self) -> None:
        self.port.closePort()

    def write(self, name: str, joint: str, value: int) -> None:
        address, size = ADDRESS[name]
        data = _bytes(_encode(name, value, size), size)
        result, error = self.ph.writeTxRx(self.port, self.ids[joint], address, size, data)
        assert result == sdk.COMM_SUCCESS, self.ph.getTxRxResult(result)
        assert error == 0, f"{name} on {joint}: {self.ph.getRxPacketError(error)}"

    def read(self, name: str, joint: str) -> int:
        address, size = ADDRESS[name]
        read = {1: self.ph.read1ByteTxRx, 2: self.ph.read2ByteTxRx, 4: self.ph.read4ByteTxRx}[size]
        value, result, error = read(self.port, self.ids[joint], address)
        assert result == sdk.COMM_SUCCESS and error == 0, (name, joint)
        return _decode(name, value, size)

    def sync_read(self, name: str, joints: list[str] | None = None) -> dict[str, int]:
        joints = list(self.ids) if joints is None else joints
        address, size = ADDRESS[name]
        self.reader.clearParam()
        self.reader.start_address, self.reader.data_length = address, size
        for joint in joints:
            assert self.reader.addParam(self.ids[joint])
        result = self.reader.txRxPacket()
        assert result == sdk.COMM_SUCCESS, self.ph.getTxRxResult(result)
        return {j: _decode(name, self.reader.getData(self.ids[j], address, size), size) for j in joints}

    def sync_write(self, name: str, values: dict[str, int]) -> None:
        address, size = ADDRESS[name]
        self.writer.clearParam()
        self.writer.start_address, self.writer.data_length = address, size
        for joint, value in values.items():
            assert self.writer.addParam(self.ids[joint], _bytes(_encode(name, value, size), size))
        assert self.writer.txPacket() == sdk.COMM_SUCCESS

    # -- MotorsBus operations
    def disable_torque(self, joints: list[str] | None = None) -> None:
        for joint in joints or list(self.ids):
            self.write("Torque_Enable", joint, 0)

    def enable_torque(self, joints: list[str] | None = None) -> None:
        for joint in joints or list(self.ids):
            self.write("Torque_Enable", joint, 1)

    def read_calibration(self) -> dict[str, tuple[int, int, int, int]]:
        """(homing offset, range min, range max, drive mode) per motor."""
        offsets = self.sync_read("Homing_Offset")
        mins, maxes = self.sync_read("Min_Position_Limit"), self.sync_read("Max_Position_Limit")
        drive = self.sync_read("Drive_Mode")
        return {j: (offsets[j], mins[j], maxes[j], drive[j]) for j in self.ids}

    def reset_calibration(self) -> None:
        for joint in self.ids:
            self.write("Homing_Offset", joint, 0)
            self.write("Min_Position_Limit", joint, 0)
            self.write("Max_Position_Limit", joint, 4095)

    def set_half_turn_homings(self) -> dict[str, int]:
        """Present_Position = Actual_Position + Homing_Offset: the offset that makes it read 2047."""
        self.reset_calibration()
        actual = self.sync_read("Present_Position")
        offsets = {j: int((4096 - 1) / 2) - pos for j, pos in actual.items()}
        for joint, offset in offsets.items():
            self.write("Homing_Offset", joint, offset)
        return offsets

    def record_ranges_of_motion(
        self, joints: list[str], move: Callable[[int], None], steps: int
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Sync reads while the operator moves the joints (`move(k)`), keeping the extremes."""
        mins = self.sync_read("Present_Position", joints)
        maxes = dict(mins)
        for k in range(steps):
            move(k)
            positions = self.sync_read("Present_Position", joints)
            mins = {j: min(v, positions[j]) for j, v in mins.items()}
            maxes = {j: max(v, positions[j]) for j, v in maxes.items()}
        return mins, maxes

    def write_calibration(self, calibration: dict[str, tuple[int, int, int, int]]) -> None:
        for joint, (offset, lo, hi, _) in calibration.items():
            self.write("Homing_Offset", joint, offset)
            self.write("Min_Position_Limit", joint, lo)
            self.write("Max_Position_Limit", joint, hi)

    def configure_motors(self) -> None:
        for joint in self.ids:
            self.write("Return_Delay_Time", joint, 0)


def follower_configure(bus: KochBus) -> None:
    """KochFollower.configure(): under torque_disabled(), the modes and the elbow's PID."""
    bus.disable_torque()
    bus.configure_motors()
    for joint in bus.ids:
        if joint != "gripper":
            bus.write("Operating_Mode", joint, EXTENDED_POSITION)
    bus.write("Operating_Mode", "gripper", CURRENT_POSITION)
    bus.write("Position_P_Gain", "elbow_flex", 1500)
    bus.write("Position_I_Gain", "elbow_flex", 0)
    bus.write("Position_D_Gain", "elbow_flex", 600)
    bus.enable_torque()


def calibrate(koch: Koch, bus: KochBus, drive_modes: dict[str, int]) -> dict[str, tuple[int, int, int, int]]:
    """Koch{Follower,Leader}.calibrate(): torque off, extended position, the drive modes, half-turn
    homings, the recorded ranges (the operator swings each joint ±0.3 rad), write_calibration."""
    bus.disable_torque()
    for joint in bus.ids:
        bus.write("Operating_Mode", joint, EXTENDED_POSITION)
    for joint, mode in drive_modes.items():
        bus.write("Drive_Mode", joint, mode)
    offsets = bus.set_half_turn_homings()
    assert bus.sync_read("Present_Position") == dict.fromkeys(bus.ids, 2047)

    recorded = [j for j in bus.ids if j not in FULL_TURN]
    swing = (0.0, 0.3, -0.15, 0.0)  # rad from where the operator held the arm (the gripper: -0.15)

    def move(k: int) -> None:
        koch.on_plant(lambda plant: plant.place({bus.ids[j]: swing[k] for j in recorded}))

    mins, maxes = bus.record_ranges_of_motion(recorded, move, len(swing))
    calibration = {
        j: (offsets[j], mins.get(j, 0), maxes.get(j, 4095), drive_modes.get(j, 0)) for j in bus.ids
    }
    bus.write_calibration(calibration)
    return calibration


@pytest.fixture
def follower(tmp_path: Path) -> Iterator[tuple[Koch, KochBus]]:
    with koch_emulator(tmp_path, FOLLOWER) as koch:
        bus = KochBus(koch.path, FOLLOWER)
        try:
            yield koch, bus
        finally:
            bus.close()


# -- the follower ---------------------------------------------------------------------------------
def test_connect_finds_the_koch_follower_by_model_number(follower: tuple[Koch, KochBus]) -> None:
    koch, bus = follower
    assert bus.connect() == {joint: MODEL_NUMBERS[model] for _, model, joint, _ in FOLLOWER}
    found, result = bus.ph.broadcastPing(bus.port)  # LeRobot's broadcast_ping (setup, scan_port)
    assert result == sdk.COMM_SUCCESS
    assert {i: data[0] for i, data in found.items()} == {i: MODEL_NUMBERS[m] for i, m, _, _ in FOLLOWER}
    # A fresh servo reads uncalibrated: no offset, the full turn, normal direction.
    assert bus.read_calibration() == dict.fromkeys(bus.ids, (0, 0, 4095, 0))


def test_calibrate_configure_and_drive_the_koch_follower(follower: tuple[Koch, KochBus]) -> None:
    koch, bus = follower
    bus.connect()
    calibration = calibrate(koch, bus, {})
    # The offsets are in the servos' EEPROM, as written (4-byte two's complement at 20).
    assert bus.read_calibration() == calibration
    for joint, (offset, lo, hi, _) in calibration.items():
        servo = koch.servo(bus.ids[joint])
        assert servo.read(20, 4) == offset.to_bytes(4, "little", signed=True)
        assert (servo.peek("min_position_limit"), servo.peek("max_position_limit")) == (lo, hi)
    # Swung from -0.15 to 0.3 rad around 2047: the recorded range, in present's frame.
    recorded = (2047 - round(0.15 * TICKS_PER_RAD), 2047 + round(0.3 * TICKS_PER_RAD))
    for joint in ("shoulder_lift", "elbow_flex", "wrist_flex", "gripper"):
        assert calibration[joint][1:3] == recorded, joint
    for joint in FULL_TURN:
        assert calibration[joint][1:3] == (0, 4095)

    follower_configure(bus)
    for joint, i in bus.ids.items():
        servo = koch.servo(i)
        assert servo.torque_enabled and servo.return_delay_s == 0.0
        assert servo.peek("operating_mode") == (CURRENT_POSITION if joint == "gripper" else EXTENDED_POSITION)
    elbow = koch.servo(3)
    assert [elbow.peek(g) for g in ("position_p_gain", "position_i_gain", "position_d_gain")] == [
        1500,
        0,
        600,
    ]
    # Torque on holds where each joint is: goal = present = 2047.
    assert bus.sync_read("Present_Position") == dict.fromkeys(bus.ids, 2047)

    # The control loop: goals by sync write, reached, read back by sync read.
    goals = {"shoulder_pan": 2047 + 300, "shoulder_lift": 2047 - 200, "elbow_flex": 2047 + 150}
    goals |= {"wrist_flex": 2047 - 150, "wrist_roll": 2047 + 400}
    bus.sync_write("Goal_Position", goals)
    time.sleep(SETTLE_S)
    present = bus.sync_read("Present_Position", list(goals))
    for joint, goal in goals.items():
        assert abs(present[joint] - goal) <= 25, (joint, goal, present[joint])
        assert koch.servo(bus.ids[joint]).peek("goal_position") == goal


def test_the_gripper_holds_an_obstacle_with_its_goal_current(follower: tuple[Koch, KochBus]) -> None:
    """Current-based position control: the gripper ordered past its stop (the jaw's joint limit,
    0.2 rad below where it was homed) pushes with the torque Goal_Current allows, no more."""
    koch, bus = follower
    bus.connect()
    calibrate(koch, bus, {})
    follower_configure(bus)
    gripper = koch.servo(6)
    kt = gripper.spec.stall_torque_nm / gripper.spec.stall_current_a  # N·m/A
    assert bus.read("Goal_Current", "gripper") == 1750  # the mode switch set it to Current_Limit
    obstacle = 2047 - round(0.2 * TICKS_PER_RAD)
    for goal_current in (100, 300):
        bus.write("Goal_Current", "gripper", goal_current)
        bus.sync_write("Goal_Position", {"gripper": obstacle - 300})  # "close fully"
        time.sleep(1.0)
        assert abs(bus.read("Present_Position", "gripper") - obstacle) <= 5  # against the stop
        current = bus.read("Present_Current", "gripper")
        assert current == pytest.approx(-goal_current, abs=5)  # mA, closing
        # The PWM that gives kt·I at a standstill: the torque is the current's.
        expected_pwm = kt * goal_current / 1000 / gripper.spec.stall_torque_nm * 885
        assert bus.read("Present_PWM", "gripper") == pytest.approx(-expected_pwm, abs=3)
    # Released (a goal inside the stop): it opens and reaches it, whatever the current limit.
    bus.sync_write("Goal_Position", {"gripper": 2047 + 200})
    time.sleep(1.0)
    assert abs(bus.read("Present_Position", "gripper") - (2047 + 200)) <= 25


def test_eeprom_writes_are_refused_while_torque_is_on(follower: tuple[Koch, KochBus]) -> None:
    """Why LeRobot turns torque off to configure: the EEPROM (Operating_Mode, Homing_Offset,
    the limits) takes writes only with Torque_Enable 0 (an Access Error otherwise)."""
    koch, bus = follower
    bus.connect()
    bus.enable_torque(["gripper"])
    result, error = bus.ph.write1ByteTxRx(bus.port, 6, 11, CURRENT_POSITION)
    assert result == sdk.COMM_SUCCESS
    assert error == dxl.ErrorCode.ACCESS_ERROR
    assert bus.ph.getRxPacketError(error) == (
        "[RxPacketError] Writing or Reading is not available to target address!"
    )
    assert koch.servo(6).peek("operating_mode") == 3
    bus.disable_torque(["gripper"])
    bus.write("Operating_Mode", "gripper", CURRENT_POSITION)


# -- the leader -------------------------------------------------------------------------------------
def test_the_koch_leader_calibrates_with_a_reversed_elbow(tmp_path: Path) -> None:
    """KochLeader: six XL330-M077 (model 1190), the elbow in reverse drive mode, the gripper a
    trigger in current-based position mode that springs back to its goal."""
    with koch_emulator(tmp_path, LEADER) as koch:
        bus = KochBus(koch.path, LEADER)
        try:
            assert bus.connect() == dict.fromkeys(bus.ids, 1190)
            calibration = calibrate(koch, bus, {"elbow_flex": 1})
            assert bus.read_calibration() == calibration
            swing = round(0.3 * TICKS_PER_RAD)
            # Reverse mode: the elbow's present position falls as its shaft turns the positive way.
            assert calibration["elbow_flex"][1:] == (2047 - swing, 2047 + round(0.15 * TICKS_PER_RAD), 1)
            koch.on_plant(lambda plant: plant.place({3: 0.1, 4: 0.1}))
            present = bus.sync_read("Present_Position", ["elbow_flex", "wrist_flex"])
            step = round(0.1 * TICKS_PER_RAD)
            assert present == {"elbow_flex": 2047 - step, "wrist_flex": 2047 + step}

            # configure(): torque off, return delay 0, modes, the gripper's torque and goal.
            bus.disable_torque()
            bus.configure_motors()
            for joint in bus.ids:
                if joint != "gripper":
                    bus.write("Operating_Mode", joint, EXTENDED_POSITION)
            bus.write("Operating_Mode", "gripper", CURRENT_POSITION)
            bus.enable_torque(["gripper"])
            open_goal = 2047 + 200
            bus.write("Goal_Position", "gripper", open_goal)
            time.sleep(1.0)
            assert abs(bus.read("Present_Position", "gripper") - open_goal) <= 25
            gripper = koch.servo(6)
            undo: list[Callable[[], None]] = []
            koch.on_plant(lambda _: undo.append(gripper.add_external_torque(0.05)))  # a finger
            time.sleep(0.3)
            pressed = bus.read("Present_Position", "gripper")
            assert pressed < open_goal - 30  # the trigger gives way (a load pushes the negative way)...
            koch.on_plant(lambda _: undo[0]())
            time.sleep(1.5)
            assert abs(bus.read("Present_Position", "gripper") - open_goal) <= 25  # ...and springs back
        finally:
            bus.close()


# -- bad input: the status error, never a missing reply ----------------------------------------------
SDK_MESSAGES = {
    dxl.ErrorCode.RESULT_FAIL: "[RxPacketError] Failed to process the instruction packet!",
    dxl.ErrorCode.INSTRUCTION_ERROR: "[RxPacketError] Undefined instruction or incorrect instruction!",
    dxl.ErrorCode.CRC_ERROR: "[RxPacketError] CRC doesn't match!",
    dxl.ErrorCode.DATA_RANGE_ERROR: "[RxPacketError] The data value is out of range!",
    dxl.ErrorCode.DATA_LENGTH_ERROR: "[RxPacketError] The data length does not match as expected!",
    dxl.ErrorCode.DATA_LIMIT_ERROR: "[RxPacketError] The data value exceeds the limit value!",
    dxl.ErrorCode.ACCESS_ERROR: "[RxPacketError] Writing or Reading is not available to target address!",
}


def test_bad_writes_get_the_protocol_2_errors(follower: tuple[Koch, KochBus]) -> None:
    koch, bus = follower
    bus.connect()
    ph, port = bus.ph, bus.port
    xl330, xl430 = koch.servo(6), koch.servo(1)
    cases = [
        # (what, SDK call, servo, error number)
        ("no register at 14", lambda: ph.write1ByteTxRx(port, 6, 14, 0), dxl.ErrorCode.ACCESS_ERROR),
        (
            "2 bytes of Goal_Position",
            lambda: ph.write2ByteTxRx(port, 6, 116, 100),
            dxl.ErrorCode.DATA_LENGTH_ERROR,
        ),
        ("Operating_Mode 2", lambda: ph.write1ByteTxRx(port, 6, 11, 2), dxl.ErrorCode.DATA_RANGE_ERROR),
        (
            "Goal_Current over the limit",
            lambda: ph.write2ByteTxRx(port, 6, 102, 1751),
            dxl.ErrorCode.DATA_LIMIT_ERROR,
        ),
        (
            "read-only Present_Position",
            lambda: ph.write4ByteTxRx(port, 6, 132, 0),
            dxl.ErrorCode.ACCESS_ERROR,
        ),
        ("XL430 mode 5", lambda: ph.write1ByteTxRx(port, 1, 11, 5), dxl.ErrorCode.DATA_RANGE_ERROR),
        ("XL430 Goal_Current", lambda: ph.write2ByteTxRx(port, 1, 102, 10), dxl.ErrorCode.ACCESS_ERROR),
    ]
    for what, call, code in cases:
        before = (bytes(xl330.regs[:147]), bytes(xl430.regs[:147]))
        result, error = call()
        assert result == sdk.COMM_SUCCESS, (what, ph.getTxRxResult(result))
        assert error == code, (what, error)
        assert ph.getRxPacketError(error) == SDK_MESSAGES[code]
        assert (bytes(xl330.regs[:147]), bytes(xl430.regs[:147])) == before, what
    # Reads past the table (the XL330's ends at 227): an Access Error too.
    _, result, error = ph.read4ByteTxRx(port, 6, 226)
    assert (result, error) == (sdk.COMM_SUCCESS, dxl.ErrorCode.ACCESS_ERROR)
    # EEPROM while torque is on.
    bus.enable_torque(["gripper"])
    result, error = ph.write4ByteTxRx(port, 6, 20, 0)
    assert (result, error) == (sdk.COMM_SUCCESS, dxl.ErrorCode.ACCESS_ERROR)

    # An ACTION with nothing registered; REG_WRITE then ACTION sets and clears Registered Instruction.
    # A unicast ACTION is answered, but the SDK's action() does not wait for the status: read it.
    def action() -> tuple[int, int]:
        assert ph.action(port, 6) == sdk.COMM_SUCCESS
        port.setPacketTimeout(11)
        reply, result = ph.rxPacket(port, False)
        return result, reply[8]

    assert action() == (sdk.COMM_SUCCESS, dxl.ErrorCode.INSTRUCTION_ERROR)
    assert ph.regWriteTxRx(port, 6, 65, 1, [1]) == (sdk.COMM_SUCCESS, 0)  # LED on, at ACTION
    assert ph.read1ByteTxRx(port, 6, 69)[0] == 1 and xl330.peek("led") == 0
    assert action() == (sdk.COMM_SUCCESS, 0)
    assert ph.read1ByteTxRx(port, 6, 69)[0] == 0 and xl330.peek("led") == 1
    # CLEAR (multi-turn reset) while the servo is still: done.
    assert ph.clearMultiTurn(port, 6) == (sdk.COMM_SUCCESS, 0)
    # The servo still answers normally.
    model, result, error = ph.ping(port, 6)
    assert (model, result, error) == (1200, sdk.COMM_SUCCESS, 0)


def test_a_corrupt_packet_gets_a_crc_error(follower: tuple[Koch, KochBus]) -> None:
    koch, bus = follower
    bus.connect()
    packet = bytearray(dxl.write(6, 65, b"\x01"))  # LED on
    packet[-1] ^= 0xFF
    bus.port.clearPort()
    bus.port.writePort(bytes(packet))
    bus.port.setPacketTimeout(11)
    reply, result = bus.ph.rxPacket(bus.port, False)
    assert result == sdk.COMM_SUCCESS
    assert reply[4] == 6 and reply[8] == dxl.ErrorCode.CRC_ERROR
    assert bus.ph.getRxPacketError(reply[8]) == SDK_MESSAGES[dxl.ErrorCode.CRC_ERROR]
    assert koch.servo(6).peek("led") == 0  # not applied


def test_clear_while_moving_is_a_result_fail() -> None:
    servos = {1: VirtualServo(servo_spec("xl330-m288"), 1)}
    responder = DynamixelResponder(BusDevices(servos))
    servos[1].step(0.0, 3.0, 0.001)  # turning at 3 rad/s
    (reply,) = responder.feed(dxl.clear(1))
    assert dxl.decode_packet(reply.packet).error == dxl.ErrorCode.RESULT_FAIL
    servos[1].step(0.0, 0.0, 0.001)
    (reply,) = responder.feed(dxl.clear(1))
    assert dxl.decode_packet(reply.packet).error == 0
    (reply,) = responder.feed(dxl.encode_instruction(1, dxl.Instruction.CLEAR, b"\x01\x00\x00\x00\x00"))
    assert dxl.decode_packet(reply.packet).error == dxl.ErrorCode.DATA_RANGE_ERROR
