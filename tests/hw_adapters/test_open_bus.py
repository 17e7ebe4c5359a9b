"""open_bus(url): schemes, options and ids; the mock's fault handler; wire timing and decoding."""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterator

import pytest

from hw_adapters import SCHEMES, BusError, ConfigError, ServoFault, TwinError, open_bus
from hw_adapters.base import parse_ids
from hw_adapters.mock import MockBus
from hw_adapters.sim import SimBus
from servo_core.catalogue import servo_spec
from servo_core.protocol import DYNAMIXEL, FEETECH, protocol_named
from servo_core.units import rad_to_ticks
from sim_models.plant import Mount, Plant
from sim_models.robots import actuated_joints, robot_urdf_text
from sim_models.servo.device import VirtualServo

TWO_PI = 2.0 * math.pi


# -- open_bus: schemes, options, ids ---------------------------------------------------
def test_schemes() -> None:
    assert set(SCHEMES) == {"sim", "mock", "dynamixel", "feetech"}


@pytest.mark.parametrize("scheme", ["dynamixel", "feetech"])
def test_a_serial_port_that_does_not_exist_is_named(scheme: str) -> None:
    with pytest.raises(ConfigError, match="cannot open serial port /dev/does-not-exist: No such file"):
        open_bus(f"{scheme}:///dev/does-not-exist?baud=1000000")
    with pytest.raises(ConfigError, match="unknown option 'speed'"):
        open_bus(f"{scheme}:///dev/does-not-exist?speed=3")


@pytest.mark.parametrize("url", ["serial:///dev/ttyUSB0", "herkulex:///dev/ttyUSB0", "://x", "SIMX://"])
def test_unknown_scheme_lists_the_valid_ones(url: str) -> None:
    with pytest.raises(ConfigError, match="unknown bus scheme") as info:
        open_bus(url)
    assert "sim" in str(info.value) and "mock" in str(info.value)


@pytest.mark.parametrize("url", ["mock", "sim:/robot", "", "/dev/ttyUSB0"])
def test_not_a_url(url: str) -> None:
    with pytest.raises(ConfigError, match="not a bus URL") as info:
        open_bus(url)
    assert "sim" in str(info.value) and "mock" in str(info.value)


@pytest.mark.parametrize(
    ("url", "valid"),
    [
        ("mock://?idz=1,2", ["ids", "model"]),
        ("mock://?ids=1&baud=57600", ["ids", "model"]),
        (
            "sim://?robot=pan_tilt&speed=3",
            ["baud", "dt", "fail_after", "ids", "model", "params", "retries", "robot"],
        ),
    ],
)
def test_unknown_option_lists_the_valid_ones(url: str, valid: list[str]) -> None:
    with pytest.raises(ConfigError, match="unknown option") as info:
        open_bus(url)
    assert ", ".join(valid) in str(info.value)


@pytest.mark.parametrize(
    ("url", "option"), [("sim://?robot=pan_tilt&baud=abc", "baud"), ("sim://?robot=pan_tilt&dt=fast", "dt")]
)
def test_option_of_the_wrong_type(url: str, option: str) -> None:
    with pytest.raises(ConfigError, match=f"option {option}=") as info:
        open_bus(url)
    assert "not a valid" in str(info.value)


@pytest.mark.parametrize("ids", ["1,1", "300", "x", "253", "1-3,2", "", "3-1", "1-", "-1", "1.5"])
@pytest.mark.parametrize("scheme", ["mock://?", "sim://?robot=arm6&"])
def test_bad_ids(scheme: str, ids: str) -> None:
    with pytest.raises(ConfigError, match="servo ids"):
        open_bus(f"{scheme}ids={ids}")


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("1", [1]),
        ("0", [0]),
        ("252", [252]),
        ("1,2,5-7", [1, 2, 5, 6, 7]),
        ("3-3", [3]),
        (" 4 , 5 ", [4, 5]),
        ("10,1-2", [10, 1, 2]),
    ],
)
def test_parse_ids(text: str, ids: list[int]) -> None:
    assert parse_ids(text) == ids


@pytest.mark.parametrize("text", ["1,1", "300", "x", "253", "1-3,2", "", ",", "3-1", "1-", "-1", "1-x"])
def test_parse_ids_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(repr(text))):
        parse_ids(text)


def test_sim_without_robot() -> None:
    with pytest.raises(ConfigError, match=r"\?robot=NAME"):
        open_bus("sim://?model=xl430-w250")


def test_sim_more_ids_than_joints() -> None:
    with pytest.raises(ConfigError, match="3 ids but the robot has 2 joints"):
        open_bus("sim://?robot=pan_tilt&ids=1-3")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("sim://?robot=crane", "unknown robot"),
        ("sim://?robot=pan_tilt&model=ax12", "unknown servo model"),
        ("sim://?robot=pan_tilt&dt=0", "dt must be a positive"),
        ("sim://?robot=pan_tilt&dt=nan", "dt must be a positive"),
        ("mock://?model=ax12", "unknown servo model"),
    ],
)
def test_bad_sim_and_mock_values(url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        open_bus(url)


@pytest.mark.parametrize("baud", ["0", "-57600"])
def test_sim_rejects_a_baud_that_is_not_positive(baud: str) -> None:
    with pytest.raises(ConfigError, match="baud"):
        bus = open_bus(f"sim://?robot=arm6&baud={baud}")
        try:
            bus.read_states([1])  # where baud=0 fails today
        finally:
            bus.close()


@pytest.fixture
def pan_tilt_plant() -> Iterator[Plant]:
    urdf = robot_urdf_text("pan_tilt")
    spec = servo_spec("xl330-m288")
    plant = Plant(urdf, [Mount(j, VirtualServo(spec, i)) for i, j in enumerate(actuated_joints(urdf), 1)])
    yield plant
    plant.close()


@pytest.mark.parametrize("option", ["robot=pan_tilt", "model=xl430-w250", "ids=1,2", "dt=0.002"])
def test_sim_context_excludes_robot_options(option: str, pan_tilt_plant: Plant) -> None:
    with pytest.raises(ConfigError, match="come from the scenario"):
        open_bus(f"sim://?{option}", plant=pan_tilt_plant)


def test_sim_context_takes_baud(pan_tilt_plant: Plant) -> None:
    with open_bus("sim://?baud=57600", plant=pan_tilt_plant, clock=lambda: 0.0) as bus:
        assert isinstance(bus, SimBus) and bus.baud == 57600
        assert [p.id for p in bus.scan([1, 2, 3])] == [1, 2]


def test_mock_options() -> None:
    with open_bus("mock://?ids=2-4&model=sts3215") as bus:
        assert isinstance(bus, MockBus)
        assert [(p.id, p.model, p.model_number) for p in bus.scan()] == [
            (2, "sts3215", 777),
            (3, "sts3215", 777),
            (4, "sts3215", 777),
        ]
        assert bus.read_states([3])[3].voltage == 12.0


def test_mock_defaults_to_one_servo() -> None:
    with open_bus("mock://") as bus:
        assert [p.id for p in bus.scan()] == [1]


# -- the mock's handler ------------------------------------------------------------
def test_mock_handler_injects_a_bus_error() -> None:
    seen: list[tuple[str, list[int]]] = []

    def handler(op: str, ids: list[int]) -> None:
        seen.append((op, ids))
        if op == "read" and 2 in ids:
            raise BusError("servo 2: checksum error in status packet")

    with open_bus("mock://?ids=1,2", handler=handler) as bus:
        bus.set_torque([1, 2], True)
        bus.write_goals({1: 0.25})
        assert bus.read_states([1])[1].position == 0.25
        with pytest.raises(BusError, match="checksum"):
            bus.read_states([1, 2])
        assert set(bus.read_states([1])) == {1}  # the bus survives a failed transaction
    assert seen == [("torque", [1, 2]), ("write", [1]), ("read", [1]), ("read", [1, 2]), ("read", [1])]


def test_mock_handler_error_is_a_twin_error() -> None:
    def handler(op: str, ids: list[int]) -> None:
        raise BusError("port gone")

    bus = open_bus("mock://?ids=1", handler=handler)
    with pytest.raises(TwinError):
        bus.ping(1)


# -- wire timing ------------------------------------------------------------------
# Dynamixel 2.0: FF FF FD 00 | ID | LEN_L LEN_H | INST | params | CRC_L CRC_H  -> 10 + params
#   sync read params: address (2) + length (2) + one byte per id         -> 14 + n
#   status: header 4, id, len 2, inst 0x55, err, params, crc 2           -> 11 + L
# Feetech STS: FF FF | ID | LEN | INST | params | CHK                    -> 6 + params
#   sync read params: address (1) + length (1) + one byte per id         -> 8 + n
#   status: FF FF | ID | LEN | ERR | params | CHK                        -> 6 + L
# 8N1: 10 bits per byte.
@pytest.mark.parametrize(
    ("protocol", "n", "length", "baud", "delays", "n_bytes"),
    [
        ("dynamixel", 1, 4, 1_000_000, 0.0, (14 + 1) + 1 * (11 + 4)),
        ("dynamixel", 3, 25, 1_000_000, 0.0, (14 + 3) + 3 * (11 + 25)),
        ("dynamixel", 2, 25, 57_600, 1e-3, (14 + 2) + 2 * (11 + 25)),
        ("feetech", 1, 2, 1_000_000, 0.0, (8 + 1) + 1 * (6 + 2)),
        ("feetech", 6, 15, 1_000_000, 0.0, (8 + 6) + 6 * (6 + 15)),
        ("feetech", 6, 15, 115_200, 6e-5, (8 + 6) + 6 * (6 + 15)),
    ],
)
def test_sync_read_time(protocol: str, n: int, length: int, baud: int, delays: float, n_bytes: int) -> None:
    expected = n_bytes * 10 / baud + delays
    got = protocol_named(protocol).sync_read_time(n, length, baud, delays)
    assert got == pytest.approx(expected, rel=1e-12)


# Sync write params: address + length (2 + 2 bytes Dynamixel, 1 + 1 Feetech), then n * (id + data).
@pytest.mark.parametrize(
    ("protocol", "n", "length", "baud", "n_bytes"),
    [
        ("dynamixel", 2, 4, 1_000_000, 10 + 4 + 2 * (1 + 4)),
        ("dynamixel", 6, 1, 57_600, 10 + 4 + 6 * (1 + 1)),
        ("dynamixel", 0, 4, 1_000_000, 10 + 4),
        ("feetech", 6, 2, 1_000_000, 6 + 2 + 6 * (1 + 2)),
        ("feetech", 1, 1, 115_200, 6 + 2 + 1 * (1 + 1)),
    ],
)
def test_sync_write_time(protocol: str, n: int, length: int, baud: int, n_bytes: int) -> None:
    got = protocol_named(protocol).sync_write_time(n, length, baud)
    assert got == pytest.approx(n_bytes * 10 / baud, rel=1e-12)


def test_sim_bus_charges_the_wire_time_of_each_transaction() -> None:
    # XL430: return delay 250 x 2 us = 500 us per answering servo.
    with open_bus("sim://?robot=pan_tilt&model=xl430-w250&ids=1,2&baud=57600") as bus:
        bus.read_states([1, 2])
        read_bytes = (14 + 2) + 2 * (11 + DYNAMIXEL.state_length)
        assert bus.last_duration_s == pytest.approx(read_bytes * 10 / 57_600 + 2 * 500e-6)
        bus.write_goals({1: 0.1, 2: -0.1})
        assert bus.last_duration_s == pytest.approx((10 + 4 + 2 * (1 + 4)) * 10 / 57_600)
        assert bus.ping(7) is None
        assert bus.last_duration_s == pytest.approx(10 * 10 / 57_600)  # the request alone
        bus.ping(1)  # the reply carries model number (2) and firmware (1)
        assert bus.last_duration_s == pytest.approx((10 + 11 + 3) * 10 / 57_600 + 500e-6)
    with open_bus("sim://?robot=arm6&model=sts3215&ids=1-6") as bus:
        bus.read_states(range(1, 7))  # STS3215 return delay 0
        read_bytes = (8 + 6) + 6 * (6 + FEETECH.state_length)
        assert bus.last_duration_s == pytest.approx(read_bytes * 10 / 1_000_000)
        bus.write_goals({i: 0.0 for i in range(1, 7)})
        assert bus.last_duration_s == pytest.approx((6 + 2 + 6 * (1 + 2)) * 10 / 1_000_000)


# -- ticks and state blocks --------------------------------------------------------
@pytest.mark.parametrize(
    ("angle", "ticks"),
    [
        (0.0, 2048),
        (math.pi / 2, 3072),
        (-math.pi / 2, 1024),
        (-math.pi, 0),
        (math.pi, 4095),  # one past the range goes to the last tick
        (math.nextafter(math.pi, 0.0), 4095),
        (TWO_PI / 4096, 2049),
        (0.49 * TWO_PI / 4096, 2048),
        (-0.49 * TWO_PI / 4096, 2048),
    ],
)
def test_rad_to_ticks(angle: float, ticks: int) -> None:
    assert rad_to_ticks(angle, 4096) == ticks


def test_rad_to_ticks_other_resolution() -> None:
    assert rad_to_ticks(0.0, 1024) == 512
    assert rad_to_ticks(math.pi / 2, 1024) == 768


def _block(size: int, fields: dict[int, tuple[int, int]]) -> bytes:
    """A register block: {offset: (raw unsigned value, size in bytes)}, little-endian."""
    out = bytearray(size)
    for offset, (value, n) in fields.items():
        out[offset : offset + n] = value.to_bytes(n, "little")
    return bytes(out)


def test_decode_sts_state() -> None:
    # Offsets from address 56: position 0, speed 2, load 4, voltage 6, temperature 7,
    # status 9 (address 65), moving 10, current 13 (address 69). Sign-magnitude fields.
    block = _block(
        FEETECH.state_length,
        {
            0: (3072, 2),  # +1024 ticks from centre
            2: (0x8000 | 100, 2),  # speed -100 ticks/s: bit 15 is the sign
            4: (0x400 | 250, 2),  # load -25.0 %: bit 10 is the sign
            6: (121, 1),  # 12.1 V
            7: (41, 1),  # °C
            9: (0b100101, 1),  # voltage, overheat, overload
            10: (1, 1),
            13: (0x8000 | 20, 2),  # current -20 x 6.5 mA
        },
    )
    s = FEETECH.decode(3, block, 0, "sts3215", 4096)
    assert s.id == 3
    assert s.position == pytest.approx(math.pi / 2)
    assert s.velocity == pytest.approx(-100 * TWO_PI / 4096)
    assert s.velocity < 0
    assert s.load == pytest.approx(-0.25)
    assert s.current == pytest.approx(-0.13)
    assert s.voltage == pytest.approx(12.1)
    assert s.temperature == 41.0
    assert s.faults == ServoFault.INPUT_VOLTAGE | ServoFault.OVERHEAT | ServoFault.OVERLOAD
    assert s.moving is True


def test_decode_sts_state_at_rest() -> None:
    block = _block(FEETECH.state_length, {0: (2048, 2), 2: (100, 2), 6: (120, 1), 7: (25, 1)})
    s = FEETECH.decode(1, block, 0, "sts3215", 4096)
    assert (s.position, s.load, s.current, s.faults, s.moving) == (0.0, 0.0, 0.0, ServoFault.NONE, False)
    assert s.velocity == pytest.approx(100 * TWO_PI / 4096)


def _dxl_block(pwm: int, current: int, velocity: int, position: int, volts: int, temp: int) -> bytes:
    # Offsets from address 122: moving 0, moving status 1, PWM 2, current 4, velocity 6,
    # position 10, trajectories 14..21, voltage 22, temperature 24. Two's complement.
    return _block(
        DYNAMIXEL.state_length,
        {
            0: (1, 1),
            2: (pwm & 0xFFFF, 2),
            4: (current & 0xFFFF, 2),
            6: (velocity & 0xFFFFFFFF, 4),
            10: (position & 0xFFFFFFFF, 4),
            14: (0xFFFFFFFF, 4),  # velocity trajectory: not decoded
            18: (0x7FFFFFFF, 4),  # position trajectory: not decoded
            22: (volts, 2),
            24: (temp, 1),
        },
    )


def test_decode_dxl_state_xm430_with_overheat() -> None:
    block = _dxl_block(pwm=-442, current=-100, velocity=-10, position=1024, volts=120, temp=72)
    s = DYNAMIXEL.decode(4, block, 0b0000_0100, "xm430-w350", 4096)
    assert s.id == 4
    assert s.position == pytest.approx(-math.pi / 2)
    assert s.velocity == pytest.approx(-10 * 0.229 * TWO_PI / 60)
    assert s.current == pytest.approx(-0.269)
    assert s.load == pytest.approx(-442 / 885)
    assert s.voltage == pytest.approx(12.0)
    assert s.temperature == 72.0
    assert s.faults == ServoFault.OVERHEAT
    assert s.moving is True


@pytest.mark.parametrize(
    ("hw_error", "faults"),
    [
        (0, ServoFault.NONE),
        (0b0000_0001, ServoFault.INPUT_VOLTAGE),
        (0b0000_0100, ServoFault.OVERHEAT),
        (0b0000_1000, ServoFault.ENCODER),
        (0b0001_0000, ServoFault.ELECTRICAL_SHOCK),
        (0b0010_0000, ServoFault.OVERLOAD),
        (0b0010_0100, ServoFault.OVERHEAT | ServoFault.OVERLOAD),
    ],
)
def test_decode_dxl_hardware_error_bits(hw_error: int, faults: ServoFault) -> None:
    block = _dxl_block(0, 0, 0, 2048, 111, 30)
    assert DYNAMIXEL.decode(1, block, hw_error, "xl330-m288", 4096).faults == faults


def test_decode_dxl_state_xl430_reports_load_not_current() -> None:
    block = _dxl_block(pwm=300, current=-250, velocity=40, position=2048 + 512, volts=111, temp=30)
    s = DYNAMIXEL.decode(1, block, 0, "xl430-w250", 4096)
    assert s.current is None
    assert s.load == pytest.approx(-0.25)  # Present Load, 0.1 % units
    assert s.position == pytest.approx(math.pi / 4)
    assert s.velocity == pytest.approx(40 * 0.229 * TWO_PI / 60)


def test_decode_dxl_state_xl330_current_in_milliamps() -> None:
    block = _dxl_block(pwm=0, current=150, velocity=0, position=2048, volts=50, temp=30)
    assert DYNAMIXEL.decode(1, block, 0, "xl330-m288", 4096).current == pytest.approx(0.150)


def test_decoders_agree_with_struct_layout() -> None:
    # The same Feetech block packed with struct, independent of _block's offsets.
    raw = struct.pack("<HHHBBxBBxxH", 1000, 5, 0x400 | 3, 74, 30, 0, 0, 7)
    s = FEETECH.decode(9, raw, 0, "sts3215", 4096)
    assert s.position == pytest.approx((1000 - 2048) * TWO_PI / 4096)
    assert s.load == pytest.approx(-0.003)
    assert s.current == pytest.approx(7 * 0.0065)


@pytest.mark.parametrize("angle", [math.nan, math.inf, -math.inf])
def test_goals_that_are_not_finite_are_refused(angle: float) -> None:
    with open_bus("mock://?ids=1") as bus, pytest.raises(ConfigError, match="finite angle"):
        bus.write_goals({1: angle})
    with pytest.raises(ConfigError, match="finite angle"):
        rad_to_ticks(angle, 4096)


def test_sim_write_goals_is_all_or_nothing() -> None:
    with open_bus("sim://?robot=pan_tilt&ids=1,2") as bus:
        bus.set_torque([1, 2], True)
        before = bus.plant.servo(1).peek("goal_position")
        with pytest.raises(BusError, match="servo 9"):
            bus.write_goals({1: 0.5, 9: 0.1})
        assert bus.plant.servo(1).peek("goal_position") == before


def test_context_for_the_wrong_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="mock:// takes no plant"):
        open_bus("mock://?ids=1", plant=object())
    with pytest.raises(ConfigError, match="sim:// takes no handler"):
        open_bus("sim://?robot=pan_tilt", handler=print)


def test_repeated_option_is_refused_and_scheme_case_is_ignored() -> None:
    with pytest.raises(ConfigError, match="'ids' is given twice"):
        open_bus("mock://?ids=1&ids=2")
    with open_bus("MOCK://?ids=4") as bus:
        assert [p.id for p in bus.scan(range(8))] == [4]


@pytest.mark.parametrize("url", ["sim://?robot=pan_tilt&ids=1,2", "mock://?ids=1,2"])
def test_a_goal_outside_the_range_sends_nothing(url: str) -> None:
    with open_bus(url) as bus:
        bus.set_torque([1, 2], True)
        bus.write_goals({1: 0.2, 2: 0.2})
        with pytest.raises(ConfigError, match="servo 2: goal 3.5 rad"):
            bus.write_goals({1: 0.5, 2: 3.5})
        bus.wait(0.5)
        assert bus.read_states([1])[1].position == pytest.approx(0.2, abs=0.02)
