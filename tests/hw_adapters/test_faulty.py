"""FaultInjectingBus: corrupt replies and silent servos on any bus, each with an undo."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from hw_adapters import (
    BusSnapshot,
    ChecksumError,
    ConfigError,
    FaultInjectingBus,
    NoReplyError,
    ServoFailedError,
    open_bus,
)
from hw_adapters.conformance import check_bus
from hw_adapters.mock import MockBus

SIM = "sim://?robot=pan_tilt&model=xl430-w250&ids=1,2"


@pytest.fixture
def bus() -> Iterator[FaultInjectingBus]:
    with FaultInjectingBus(open_bus(SIM)) as wrapped:
        yield wrapped  # type: ignore[misc]


def test_without_faults_it_conforms() -> None:
    check_bus(lambda: FaultInjectingBus(open_bus(SIM)), [1, 2])
    check_bus(lambda: FaultInjectingBus(MockBus([1, 2, 3])), [1, 2, 3])


def test_without_faults_it_passes_through(bus: FaultInjectingBus) -> None:
    states = bus.read_states([1, 2])
    assert sorted(states) == [1, 2]
    assert bus.last_duration_s == bus.inner.last_duration_s > 0
    assert bus.snapshot() == bus.inner.snapshot() == BusSnapshot(transactions=1)


def test_injected_errors_raise_count_and_undo(bus: FaultInjectingBus) -> None:
    bus.set_torque([1, 2], True)
    undo = bus.inject_errors(1.0, np.random.default_rng(1))
    with pytest.raises(ChecksumError, match="injected"):
        bus.read_states([1, 2])
    with pytest.raises(ChecksumError, match="injected"):
        bus.write_goals({1: 0.5})
    bus.wait(0.3)
    undo()
    assert abs(bus.read_states([1])[1].position) < 0.05  # the lost goal never arrived
    snap = bus.snapshot()
    assert (snap.errors_injected, snap.checksum_errors, snap.transactions) == (2, 1, 2)
    assert bus.inner.snapshot().errors_injected == 0


def test_error_rate_draws_from_the_generator(bus: FaultInjectingBus) -> None:
    bus.inject_errors(0.3, np.random.default_rng(7))
    errors = 0
    for _ in range(200):
        try:
            bus.read_states([1])
        except ChecksumError:
            errors += 1
    assert errors == bus.snapshot().errors_injected
    assert 30 < errors < 90
    with pytest.raises(ConfigError, match="probability"):
        bus.inject_errors(1.5, np.random.default_rng(0))


def test_a_disconnected_servo_fails_after_fail_after_reads(bus: FaultInjectingBus) -> None:
    undo = bus.disconnect(2)
    assert bus.ping(2) is None and bus.ping(1) is not None
    assert [p.id for p in bus.scan(range(4))] == [1]  # pings never mark failed
    for _ in range(bus.fail_after):
        with pytest.raises(NoReplyError, match=r"\[2\]"):
            bus.read_states([1, 2])
    assert bus.failed == {2}
    with pytest.raises(ServoFailedError) as info:
        bus.read_states([2])
    assert info.value.servo_ids == [2]
    with pytest.raises(ServoFailedError):
        bus.write_goals({2: 0.1})
    with pytest.raises(NoReplyError):
        bus.set_torque([2], True)
    assert sorted(bus.read_states([1])) == [1]  # the others still answer
    undo()
    assert bus.ping(2) is not None
    with pytest.raises(ServoFailedError):  # failed stays failed, as on a serial bus
        bus.read_states([2])
    assert bus.snapshot().no_reply == bus.fail_after


def test_an_answer_resets_the_missed_reads(bus: FaultInjectingBus) -> None:
    for _ in range(3):
        undo = bus.disconnect(1)
        for _ in range(bus.fail_after - 1):
            with pytest.raises(NoReplyError):
                bus.read_states([1])
        undo()
        bus.read_states([1])
    assert bus.failed == frozenset()


def test_snapshot_adds_to_the_inner_counters() -> None:
    with FaultInjectingBus(MockBus([1])) as bus:
        bus.disconnect(1)
        with pytest.raises(NoReplyError):
            bus.read_states([1])
        assert bus.snapshot() == BusSnapshot(transactions=1, no_reply=1)
