"""ServoBus.arm_watchdog / disarm_watchdog: Dynamixel's Bus Watchdog (98) from the host side.

First against the emulator's servos on a scripted port, their clock stepped by hand (bytes on
the wire, virtual time); then end to end through the emulator on a pseudo-terminal.
"""

from __future__ import annotations

import math
import time

import pytest

from hw_adapters import open_bus
from hw_adapters.base import BusError, ConfigError, StatusError
from hw_adapters.dynamixel import protocol as dxl
from hw_adapters.dynamixel.bus import DynamixelBus
from hw_adapters.emulator.dynamixel import DynamixelResponder
from hw_adapters.emulator.feetech import FeetechResponder
from hw_adapters.emulator.responder import BusDevices
from hw_adapters.fake_port import ScriptedPort
from hw_adapters.feetech.bus import FeetechBus
from hw_adapters.serial_link import SerialLink
from servo_core.catalogue import servo_spec
from servo_core.units import rad_to_ticks
from sim_models.servo.device import VirtualServo

IDS = (1, 2)
DATA_RANGE_ERROR = 4


Rig = tuple[DynamixelBus | FeetechBus, dict[int, VirtualServo], ScriptedPort]


def _rig(vendor: str = "dynamixel") -> Rig:
    model, responder_cls, bus_cls = (
        ("xl430-w250", DynamixelResponder, DynamixelBus)
        if vendor == "dynamixel"
        else ("sts3215", FeetechResponder, FeetechBus)
    )
    servos = {i: VirtualServo(servo_spec(model), i) for i in IDS}
    responder = responder_cls(BusDevices(servos))
    port = ScriptedPort(lambda packet: b"".join(r.packet for r in responder.feed(packet)) or None)
    bus = bus_cls(SerialLink("fake", 1_000_000, open_port=port.open_port))
    bus.scan(IDS)
    return bus, servos, port


def _run(servos: dict[int, VirtualServo], seconds: float) -> None:
    """Let `seconds` pass on the servos' clock, shafts still, nothing on the bus."""
    for _ in range(round(seconds / 0.001)):
        for servo in servos.values():
            servo.step(0.0, 0.0, 0.001)


@pytest.mark.parametrize(("timeout_s", "units"), [(0.02, 1), (0.1, 5), (0.05, 3), (0.029, 1), (2.54, 127)])
def test_arming_writes_the_nearest_20_ms_units_then_reads_them_back(timeout_s: float, units: int) -> None:
    bus, servos, port = _rig()
    before = len(port.written)
    assert bus.arm_watchdog(IDS, timeout_s) is True
    assert port.written[before:] == [
        dxl.sync_write(98, 1, {1: bytes([units]), 2: bytes([units])}),
        dxl.sync_read(98, 1, list(IDS)),
    ]
    assert all(s.peek("bus_watchdog") == units for s in servos.values())


@pytest.mark.parametrize("timeout_s", [0.0, 0.019, 2.55, 10.0, -1.0, math.nan])
def test_a_timeout_outside_20_ms_to_2_54_s_is_a_config_error(timeout_s: float) -> None:
    bus, _, port = _rig()
    before = len(port.written)
    with pytest.raises(ConfigError, match=r"outside 0\.02\.\.2\.54 s"):
        bus.arm_watchdog(IDS, timeout_s)
    assert len(port.written) == before  # nothing sent


def test_a_silent_host_stops_the_servos_and_disarming_clears_it() -> None:
    bus, servos, _ = _rig()
    bus.set_torque(IDS, True)
    bus.arm_watchdog(IDS, 0.1)
    _run(servos, 0.09)
    bus.read_states(IDS)  # an instruction in time: the count starts again
    _run(servos, 0.09)
    assert not any(s.watchdog_fired for s in servos.values())
    _run(servos, 0.02)
    assert all(s.watchdog_fired for s in servos.values())
    with pytest.raises(BusError, match=r"read back \{1: -1, 2: -1\}"):
        bus.arm_watchdog(IDS, 0.1)  # a fired watchdog must be cleared first
    with pytest.raises(StatusError) as refused:
        bus.transaction(dxl.write(1, 116, (2100).to_bytes(4, "little")), [(1, 0)])
    assert refused.value.code == DATA_RANGE_ERROR
    bus.disarm_watchdog(IDS)
    assert all(s.peek("bus_watchdog") == 0 and not s.watchdog_fired for s in servos.values())
    bus.transaction(dxl.write(1, 116, (2100).to_bytes(4, "little")), [(1, 0)])
    assert servos[1].peek("goal_position") == 2100


def test_feetech_has_no_watchdog_and_sends_nothing() -> None:
    bus, _, port = _rig("feetech")
    before = len(port.written)
    assert bus.arm_watchdog(IDS, 0.1) is False
    bus.disarm_watchdog(IDS)
    assert len(port.written) == before


# -- end to end, over the emulator's pseudo-terminal ----------------------------------------
PROFILE_VELOCITY = 112  # 0.229 rpm units


@pytest.mark.realtime
def test_the_emulated_servo_stops_when_the_host_falls_silent(emulator) -> None:
    emu = emulator("dynamixel", "xl430-w250", "pan_tilt")
    with open_bus(emu.url()) as bus:
        assert isinstance(bus, DynamixelBus)
        bus.set_torque([1], True)
        start = bus.read_states([1])[1].position
        bus.transaction(dxl.write(1, PROFILE_VELOCITY, (20).to_bytes(4, "little")), [(1, 0)])  # ~0.5 rad/s
        goal = start + 2.5  # five seconds away at that speed
        assert bus.arm_watchdog([1], 0.1)
        bus.write_goals({1: goal})
        time.sleep(0.6)  # silence: the watchdog fires 0.1 s in
        stopped = bus.read_states([1])[1].position
        time.sleep(0.3)
        held = bus.read_states([1])[1].position
        assert abs(held - stopped) < 0.01, (start, stopped, held)  # moving, it would go 0.14 rad
        assert stopped - start < 0.5 * (goal - start)
        assert bus.transaction(dxl.read(1, 98, 1), [(1, 1)])[1].params == b"\xff"  # Bus Watchdog Error
        bus.disarm_watchdog([1])
        assert bus.transaction(dxl.read(1, 98, 1), [(1, 1)])[1].params == b"\x00"
        bus.write_goals({1: goal})
        time.sleep(0.3)
        assert bus.read_states([1])[1].position - held > 0.05  # on its way again
        assert emu.servo(1).peek("goal_position") == rad_to_ticks(goal, 4096)
