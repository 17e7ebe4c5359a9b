"""Fast Sync Read end to end: our bus and the Dynamixel SDK against the emulator on a pty."""

from __future__ import annotations

import math
import time

import dynamixel_sdk as sdk
import pytest

from hw_adapters import open_bus
from hw_adapters.dynamixel import protocol as dxl

ARM6 = (1, 2, 3, 4, 5, 6)
THREE = (1, 2, 3)
PRESENT_POSITION = 132
TICK = 2.0 * math.pi / 4096


@pytest.mark.realtime
def test_fast_read_of_three_servos_matches_the_sync_read(emulator) -> None:
    emu = emulator("dynamixel", "xl430-w250", "arm6")
    with (
        open_bus(emu.url(read="fast")) as fast,
        open_bus(emu.url(read="sync")) as sync,
    ):
        sync.set_torque(THREE, True)  # held where they are, so both reads see the same shafts
        by_fast, by_sync = fast.read_states(THREE), sync.read_states(THREE)
        assert sorted(by_fast) == list(THREE)
        for i in THREE:
            assert by_fast[i].position == pytest.approx(by_sync[i].position, abs=2 * TICK)
            assert by_fast[i].temperature == by_sync[i].temperature
            assert by_fast[i].voltage == by_sync[i].voltage
        before = fast.snapshot().transactions
        fast.read_states(THREE)
        assert fast.snapshot().transactions == before + 1  # one request, one combined reply


@pytest.mark.realtime
def test_the_dynamixel_sdk_decodes_the_emulators_fast_sync_read(emulator) -> None:
    emu = emulator("dynamixel", "xl430-w250", "arm6")
    port = sdk.PortHandler(emu.path)
    assert port.openPort() and port.setBaudRate(1_000_000)
    try:
        reader = sdk.GroupSyncRead(port, sdk.PacketHandler(2.0), PRESENT_POSITION, 4)
        for i in ARM6:
            assert reader.addParam(i)
        assert reader.fastSyncRead() == sdk.COMM_SUCCESS
        for i in ARM6:
            assert reader.isAvailable(i, PRESENT_POSITION, 4)
            assert reader.getData(i, PRESENT_POSITION, 4) == emu.servo(i).peek("present_position")
    finally:
        port.closePort()


@pytest.mark.realtime
def test_a_write_then_a_fast_read_take_at_least_their_wire_time(emulator) -> None:
    baud = 57_600  # slow enough that the wire time dwarfs any scheduling noise
    emu = emulator("dynamixel", "xl430-w250", "arm6", wire_timing=True, baud=baud)
    with open_bus(emu.url(read="fast")) as bus:
        bus.set_torque(ARM6, True)
        states = bus.read_states(ARM6)
        goals = {i: states[i].position for i in ARM6}
        write = len(dxl.sync_write(116, 4, {i: bytes(4) for i in ARM6}))
        read = len(dxl.fast_sync_read(122, 25, ARM6)) + dxl.fast_sync_read_reply_size(len(ARM6), 25)
        # The line carries the write first; the combined reply waits for the first servo's return delay only.
        wire_s = (write + read) * 10 / baud + emu.servo(1).return_delay_s
        for _ in range(3):
            start = time.perf_counter()
            bus.write_goals(goals)
            bus.read_states(ARM6)
            assert time.perf_counter() - start >= wire_s


@pytest.mark.realtime
def test_a_fast_read_too_long_for_one_status_packet_gets_a_length_error(emulator) -> None:
    import serial

    emu = emulator("dynamixel", "xl430-w250", "arm6")
    with serial.Serial(emu.path, 1_000_000, timeout=0.5) as port:
        port.write(dxl.fast_sync_read(0, 20_000, ARM6))  # 6 x 20,000 bytes: LEN would pass 65,535
        deadline = time.monotonic() + 2.0
        parser, packets = dxl.PacketParser(), []
        while not packets and time.monotonic() < deadline:
            packets = parser.feed(port.read(64))
    assert packets and packets[0].error == dxl.ErrorCode.DATA_LENGTH_ERROR
    with open_bus(emu.url()) as bus:  # and the emulator still serves
        assert bus.ping(1) is not None
