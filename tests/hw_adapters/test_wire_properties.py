"""Property tests of the codecs between SI units and control-table bytes."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw_adapters import open_bus
from hw_adapters.sim import SimBus
from sim_models.servo.control_table import DYNAMIXEL_X, FEETECH_STS, Register

BUSES = {
    "dynamixel": "sim://?robot=pan_tilt&model=xl430-w250&ids=1,2",
    "feetech": "sim://?robot=arm6&model=sts3215&ids=1-6",
}
ANGLES = st.floats(min_value=-math.pi, max_value=math.pi, exclude_max=True, allow_nan=False)


@pytest.fixture(scope="module", params=sorted(BUSES))
def sim_bus(request: pytest.FixtureRequest) -> Iterator[SimBus]:
    bus = open_bus(BUSES[request.param])
    assert isinstance(bus, SimBus)
    yield bus
    bus.close()


@settings(max_examples=150, deadline=None)
@given(angle=ANGLES, which=st.integers(0, 5))
def test_goal_round_trips_through_the_control_table(sim_bus: SimBus, angle: float, which: int) -> None:
    servo = sim_bus.plant.servos[which % len(sim_bus.plant.servos)]
    sim_bus.write_goals({servo.servo_id: angle})
    reg = servo.table["goal_position"]
    ticks = reg.decode(servo.read(reg.address, reg.size))
    back = (ticks - servo.spec.resolution_ticks // 2) * servo.spec.rad_per_tick
    assert abs(back - angle) <= servo.spec.rad_per_tick
    assert abs(back - angle) <= servo.spec.rad_per_tick / 2 + 1e-12  # rounded to the nearest tick


REGISTERS = [
    pytest.param(reg, id=f"{t.protocol}.{reg.name}")
    for t in (DYNAMIXEL_X, FEETECH_STS)
    for reg in t.registers
]


@pytest.mark.parametrize("reg", REGISTERS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_register_round_trip(reg: Register, data: st.DataObject) -> None:
    lo, hi = reg.lowest, reg.highest  # type: ignore[attr-defined]
    value = data.draw(st.integers(lo, hi) | st.sampled_from([lo, hi, 0]), label="value")
    raw = reg.encode(value)
    assert len(raw) == reg.size
    assert reg.decode(raw) == value


@pytest.mark.parametrize("reg", REGISTERS)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_register_encode_saturates(reg: Register, data: st.DataObject) -> None:
    lo, hi = reg.lowest, reg.highest  # type: ignore[attr-defined]
    value = data.draw(st.integers(max_value=lo - 1) | st.integers(min_value=hi + 1), label="value")
    assert reg.decode(reg.encode(value)) == (lo if value < lo else hi)


@pytest.mark.parametrize("reg", REGISTERS)
def test_register_range_fills_its_bytes(reg: Register) -> None:
    lo, hi = reg.lowest, reg.highest  # type: ignore[attr-defined]
    bits = 8 * reg.size if reg.sign_bit is None else reg.sign_bit + 1
    assert hi - lo + 1 == (1 << bits) - (1 if reg.sign_bit is not None else 0)
