"""Property tests of the codecs between SI units and control-table bytes."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw_adapters import open_bus
from hw_adapters.sim import SimBus
from servo_core.control_table import Register
from servo_core.dynamixel_table import DYNAMIXEL_X
from servo_core.feetech_table import FEETECH_STS
from servo_core.units import rad_to_ticks

BUSES = {
    "dynamixel": "sim://?robot=pan_tilt&model=xl430-w250&ids=1,2",
    "feetech": "sim://?robot=arm6&model=sts3215&ids=1-6",
}
TICK = 2.0 * math.pi / 4096  # rad, both models
# rad_to_ticks rounds angles in [pi - TICK/2, pi) up to tick 4096, one past the last position tick.
EDGE = math.pi - TICK / 2
ANGLES = st.floats(min_value=-math.pi, max_value=math.pi, exclude_max=True, allow_nan=False)
INNER_ANGLES = st.floats(min_value=-math.pi, max_value=EDGE, exclude_max=True, allow_nan=False)


@pytest.fixture(scope="module")
def buses() -> Iterator[dict[str, SimBus]]:
    opened = {protocol: cast(SimBus, open_bus(url)) for protocol, url in BUSES.items()}
    yield opened
    for bus in opened.values():
        bus.close()


def _goal_round_trip(bus: SimBus, which: int, angle: float) -> tuple[int, float]:
    """Write `angle` as a goal through the bus; read the goal register back: (ticks, rad)."""
    servo = bus.plant.servos[which % len(bus.plant.servos)]
    bus.write_goals({servo.servo_id: angle})
    reg = servo.table["goal_position"]
    ticks = reg.decode(servo.read(reg.address, reg.size))
    return ticks, (ticks - servo.spec.resolution_ticks // 2) * servo.spec.rad_per_tick


@pytest.mark.parametrize("protocol", sorted(BUSES))
@settings(max_examples=150, deadline=None)
@given(angle=INNER_ANGLES, which=st.integers(0, 5))
def test_goal_round_trips_to_the_nearest_tick(
    buses: dict[str, SimBus], protocol: str, angle: float, which: int
) -> None:
    ticks, back = _goal_round_trip(buses[protocol], which, angle)
    assert ticks == rad_to_ticks(angle, 4096)
    assert abs(back - angle) <= TICK / 2 + 1e-12


@settings(max_examples=150, deadline=None)
@given(angle=ANGLES, which=st.integers(0, 5))
def test_feetech_goal_round_trips_within_one_tick(buses: dict[str, SimBus], angle: float, which: int) -> None:
    _, back = _goal_round_trip(buses["feetech"], which, angle)  # tick 4096 is clamped to 4095
    assert abs(back - angle) <= TICK


@pytest.mark.parametrize("angle", [math.nextafter(math.pi, 0.0), math.pi - TICK / 4])
def test_dynamixel_goal_just_below_pi_round_trips_within_one_tick(
    buses: dict[str, SimBus], angle: float
) -> None:
    _, back = _goal_round_trip(buses["dynamixel"], 0, angle)
    assert abs(back - angle) <= TICK


REGISTERS = [
    pytest.param(reg, id=f"{t.protocol}.{reg.name}")
    for t in (DYNAMIXEL_X, FEETECH_STS)
    for reg in t.registers
]


@pytest.mark.parametrize("reg", REGISTERS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_register_round_trip(reg: Register, data: st.DataObject) -> None:
    lo, hi = reg.lowest, reg.highest
    value = data.draw(st.integers(lo, hi) | st.sampled_from([lo, hi, 0]), label="value")
    raw = reg.encode(value)
    assert len(raw) == reg.size
    assert reg.decode(raw) == value


@pytest.mark.parametrize("reg", REGISTERS)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_register_encode_saturates(reg: Register, data: st.DataObject) -> None:
    lo, hi = reg.lowest, reg.highest
    value = data.draw(st.integers(max_value=lo - 1) | st.integers(min_value=hi + 1), label="value")
    assert reg.decode(reg.encode(value)) == (lo if value < lo else hi)


@pytest.mark.parametrize("reg", REGISTERS)
def test_register_range_fills_its_bytes(reg: Register) -> None:
    lo, hi = reg.lowest, reg.highest
    bits = 8 * reg.size if reg.sign_bit is None else reg.sign_bit + 1
    assert hi - lo + 1 == (1 << bits) - (1 if reg.sign_bit is not None else 0)
