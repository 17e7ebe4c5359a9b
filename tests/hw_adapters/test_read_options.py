"""The `read=` and `state=` options of the serial bus URLs, and the Feetech state blocks."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import pytest

from hw_adapters import open_bus
from hw_adapters.base import ConfigError, ServoFault
from hw_adapters.dynamixel.bus import DynamixelBus
from hw_adapters.emulator.feetech import FeetechResponder
from hw_adapters.emulator.responder import BusDevices
from hw_adapters.fake_port import ScriptedPort
from hw_adapters.feetech import protocol as sts
from hw_adapters.feetech.bus import FeetechBus
from hw_adapters.serial_link import SerialLink
from servo_core.catalogue import servo_spec
from sim_models.servo.device import VirtualServo

TICK = 2.0 * math.pi / 4096


@pytest.fixture
def tty() -> Iterator[str]:
    """A serial device path nobody answers on (one end of a fresh pseudo-terminal)."""
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def test_dynamixel_url_takes_read_and_state(tty: str) -> None:
    with open_bus(f"dynamixel://{tty}?read=fast&state=motion") as bus:
        assert isinstance(bus, DynamixelBus)
        assert (bus.read_mode, bus.state_address, bus.state_block.length) == ("fast", 128, 8)
    with open_bus(f"dynamixel://{tty}") as bus:
        assert isinstance(bus, DynamixelBus)
        assert (bus.read_mode, bus.state_address, bus.state_block.length) == ("sync", 122, 25)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("read=turbo", "read='turbo': valid values are sync, fast"),
        ("state=all", "no state block 'all'; valid: full, motion, position"),
    ],
)
def test_a_bad_value_names_the_valid_ones(tty: str, query: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_bus(f"dynamixel://{tty}?{query}")


def test_feetech_takes_state_but_has_no_fast_read(tty: str) -> None:
    with open_bus(f"feetech://{tty}?state=position") as bus:
        assert isinstance(bus, FeetechBus) and bus.state_block.length == 2
    with pytest.raises(ConfigError, match="unknown option 'read'"):
        open_bus(f"feetech://{tty}?read=fast")


def _feetech(state: str) -> tuple[FeetechBus, dict[int, VirtualServo], ScriptedPort]:
    servos = {i: VirtualServo(servo_spec("sts3215"), i) for i in (1, 2)}
    for i, servo in servos.items():
        servo.step(0.2 * i, -0.4, 0.001)
    responder = FeetechResponder(BusDevices(servos))
    port = ScriptedPort(lambda packet: b"".join(r.packet for r in responder.feed(packet)) or None)
    bus = FeetechBus(SerialLink("fake", 1_000_000, open_port=port.open_port), state=state)
    return bus, servos, port


@pytest.mark.parametrize(("state", "length"), [("full", 15), ("motion", 4), ("position", 2)])
def test_feetech_reads_the_block_asked(state: str, length: int) -> None:
    bus, servos, port = _feetech(state)
    servos[2].force_overheat()
    states = bus.read_states([1, 2])
    assert sts.decode_instruction(port.written[-1]).params == bytes([56, length, 1, 2])
    for i in (1, 2):
        assert states[i].position == pytest.approx(0.2 * i, abs=TICK)
    # The alarm arrives in the status byte whatever the block holds.
    assert states[2].faults & ServoFault.OVERHEAT and not states[1].faults
    assert math.isnan(states[1].velocity) == (state == "position")
    assert math.isnan(states[1].temperature) == (state != "full")
