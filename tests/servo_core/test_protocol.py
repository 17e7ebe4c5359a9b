"""The per-protocol objects: what generic code asks instead of comparing protocol names."""

from __future__ import annotations

import math

import pytest

from servo_core.catalogue import catalogue, servo_spec
from servo_core.dynamixel_table import DYNAMIXEL_X
from servo_core.errors import ConfigError
from servo_core.feetech_table import FEETECH_STS
from servo_core.protocol import DYNAMIXEL, FEETECH, PROTOCOLS, protocol_named
from servo_core.state import ServoFault
from servo_core.units import (
    decode_sign_magnitude,
    encode_sign_magnitude,
    rad_to_ticks,
    servo_range_rad,
    ticks_to_rad,
)


def test_protocols_are_found_by_the_name_in_the_catalogue() -> None:
    assert protocol_named("dynamixel") is DYNAMIXEL
    assert protocol_named("feetech") is FEETECH
    for spec in catalogue().values():
        assert spec.bus_protocol is PROTOCOLS[spec.protocol]
    with pytest.raises(ConfigError, match="unknown servo protocol 'herkulex'; known: dynamixel, feetech"):
        protocol_named("herkulex")


def test_packet_sizes() -> None:
    assert (DYNAMIXEL.instruction_size(0), DYNAMIXEL.status_size(3)) == (10, 14)
    assert (FEETECH.instruction_size(0), FEETECH.status_size(0)) == (6, 6)
    # One sync read of 2 servos' state blocks, at 1 Mbaud, no return delay.
    dxl_bytes = (10 + 4 + 2) + 2 * (11 + 25)
    assert DYNAMIXEL.sync_read_time(2, 25, 1_000_000, 0.0) == pytest.approx(dxl_bytes * 1e-5)
    sts_bytes = 6 + 2 + 2 * (1 + 2)
    assert FEETECH.sync_write_time(2, 2, 1_000_000) == pytest.approx(sts_bytes * 1e-5)


def test_registers_and_blocks() -> None:
    assert DYNAMIXEL.table is DYNAMIXEL_X and FEETECH.table is FEETECH_STS
    assert (DYNAMIXEL.state_address, DYNAMIXEL.state_length) == (122, 25)
    assert (FEETECH.state_address, FEETECH.state_length) == (56, 15)
    assert (DYNAMIXEL.goal.address, DYNAMIXEL.goal.size) == (116, 4)
    assert (FEETECH.goal.address, FEETECH.goal.size) == (42, 2)
    assert DYNAMIXEL.firmware_register == "firmware_version"
    assert FEETECH.firmware_register == "firmware_major"
    for proto in (DYNAMIXEL, FEETECH):
        assert proto.state_address + proto.state_length <= proto.table.size
        assert proto.firmware_register in proto.table


def test_behaviour_flags() -> None:
    assert DYNAMIXEL.refuses_out_of_range_goals and not FEETECH.refuses_out_of_range_goals
    assert FEETECH.sign_magnitude and not DYNAMIXEL.sign_magnitude
    assert FEETECH.goal.sign_bit == 15 and DYNAMIXEL.goal.signed


def test_faults_map_vendor_bits() -> None:
    assert DYNAMIXEL.faults(0) == ServoFault.NONE
    assert DYNAMIXEL.faults(8) == ServoFault.ENCODER
    assert FEETECH.faults(2 | 32) == ServoFault.SENSOR | ServoFault.OVERLOAD


@pytest.mark.parametrize("resolution", [1024, 4096])
def test_decode_uses_the_given_resolution(resolution: int) -> None:
    block = bytearray(FEETECH.state_length)
    block[0:2] = (resolution // 2 + resolution // 4).to_bytes(2, "little")
    state = FEETECH.decode(1, bytes(block), 0, "sts3215", resolution)
    assert state.position == pytest.approx(math.pi / 2)


def test_units() -> None:
    assert rad_to_ticks(math.pi / 2, 4096) == 3072
    assert ticks_to_rad(3072, 4096) == pytest.approx(math.pi / 2)
    assert decode_sign_magnitude(0x8000 | 5, 15) == -5
    assert encode_sign_magnitude(-5, 15) == 0x8000 | 5
    assert encode_sign_magnitude(1 << 20, 10) == 1023  # saturated


def test_servo_range_comes_from_the_model_resolution() -> None:
    lo, hi = servo_range_rad(servo_spec("xl430-w250"))
    assert lo == -math.pi and hi == pytest.approx(math.pi * 2047 / 2048)

    class Coarse:
        resolution_ticks = 1024

    lo, hi = servo_range_rad(Coarse())
    assert lo == -math.pi and hi == pytest.approx(math.pi * 511 / 512)
