"""Watchers of an emulator session (twin emulate --out) never take the servos down with them."""

from __future__ import annotations

import time

import pytest

from hw_adapters import open_bus


@pytest.mark.realtime
def test_a_watcher_that_fails_is_dropped_and_the_servos_keep_answering(emulator) -> None:
    emu = emulator("dynamixel", "xl430-w250", "pan_tilt")
    seen: list[bytes] = []

    def full_disk(now: float) -> None:
        raise OSError(28, "No space left on device")

    emu.server.on_receive = lambda t, data: seen.append(data)
    emu.server.on_tick = full_disk
    time.sleep(0.05)
    with open_bus(emu.url()) as bus:
        assert bus.ping(1) is not None and bus.ping(2) is not None
    assert isinstance(emu.server.watch_error, OSError)
    assert emu.server.on_receive is None and emu.server.on_tick is None
