"""FaultInjectingBus: corrupt replies and silent servos on any bus, each with an undo, met by
the serial buses' rules: failed attempts counted and retried, servos marked failed after
`fail_after` missed transactions in a row."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator

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
from hw_adapters.faulty import DEFAULT_FAIL_AFTER, DEFAULT_RETRIES
from hw_adapters.mock import MockBus
from hw_adapters.serial_bus import SerialServoBus
from hw_adapters.sim import SimBus

from .test_serial_bus_errors import VENDORS, corrupt, identified, joined, only_on_sync_read

SIM = "sim://?robot=pan_tilt&model=xl430-w250&ids=1,2"


@pytest.fixture
def bus() -> Iterator[FaultInjectingBus]:
    wrapped = FaultInjectingBus(open_bus(SIM))
    with wrapped:
        yield wrapped


def one_read_s() -> float:
    """Wire time of one clean read of servos 1 and 2 on a fresh bus."""
    with open_bus(SIM) as fresh:
        fresh.read_states([1, 2])
        return fresh.last_duration_s


def test_without_faults_it_conforms() -> None:
    check_bus(lambda: FaultInjectingBus(open_bus(SIM)), [1, 2])
    check_bus(lambda: FaultInjectingBus(MockBus([1, 2, 3])), [1, 2, 3])


def test_without_faults_it_passes_through(bus: FaultInjectingBus) -> None:
    states = bus.read_states([1, 2])
    assert sorted(states) == [1, 2]
    assert bus.last_duration_s == bus.inner.last_duration_s > 0
    assert bus.snapshot() == bus.inner.snapshot() == BusSnapshot(transactions=1)


def test_the_defaults_are_the_serial_buses() -> None:
    serial = inspect.signature(SerialServoBus.__init__).parameters
    assert (serial["retries"].default, serial["fail_after"].default) == (DEFAULT_RETRIES, DEFAULT_FAIL_AFTER)
    sim = inspect.signature(SimBus.__init__).parameters
    assert (sim["retries"].default, sim["fail_after"].default) == (DEFAULT_RETRIES, DEFAULT_FAIL_AFTER)
    wrapped = FaultInjectingBus(MockBus([1]))  # a bus with no settings of its own
    assert (wrapped.retries, wrapped.fail_after) == (2, 5)


def test_a_corrupt_read_is_retried_counted_and_takes_its_wire_time(bus: FaultInjectingBus) -> None:
    undo = bus.inject_errors(1.0, np.random.default_rng(1))
    with pytest.raises(ChecksumError, match=r"corrupt reply from servo\(s\) \[1, 2\] \(injected"):
        bus.read_states([1, 2])
    attempts = 1 + bus.retries
    assert bus.snapshot() == BusSnapshot(
        transactions=attempts,
        retries=bus.retries,
        no_reply=attempts,
        checksum_errors=2 * attempts,  # both servos' status packets, on every attempt
        errors_injected=attempts,
    )
    assert bus.last_duration_s == pytest.approx(attempts * one_read_s())
    undo()
    assert sorted(bus.read_states([1, 2])) == [1, 2]


def test_corrupt_reads_count_toward_fail_after(bus: FaultInjectingBus) -> None:
    bus.inject_errors(1.0, np.random.default_rng(2))
    for _ in range(bus.fail_after):
        assert bus.failed == frozenset()
        with pytest.raises(ChecksumError):
            bus.read_states([1, 2])
    assert bus.failed == {1, 2}
    before = bus.snapshot()
    with pytest.raises(ServoFailedError) as info:
        bus.read_states([2])
    assert info.value.servo_ids == [2]
    assert bus.snapshot() == before, "a failed servo is refused before anything is sent"
    assert bus.last_duration_s == 0.0
    with pytest.raises(ServoFailedError):
        bus.write_goals({1: 0.1})
    assert bus.read_states([]) == {}, "a read of nobody has nothing to corrupt"


def test_retries_absorb_most_errors_at_a_rate_of_0_3(bus: FaultInjectingBus) -> None:
    bus.inject_errors(0.3, np.random.default_rng(7))
    lost = 0
    for _ in range(300):
        try:
            bus.read_states([1, 2])
        except ChecksumError:
            lost += 1
    snap = bus.snapshot()
    # About 30 % of 300+ attempts corrupt, about 0.3³ = 2.7 % of the reads lost.
    assert 70 < snap.errors_injected < 160
    assert 0 < lost < 20
    # Each lost read spent all of its attempts; every other error was followed by a retry.
    assert snap.retries == snap.errors_injected - lost
    assert snap.transactions == 300 + snap.retries
    assert bus.failed == frozenset(), "never fail_after lost reads in a row"


def test_error_draws_come_from_the_generator() -> None:
    def lost_reads(seed: int) -> list[int]:
        bus = FaultInjectingBus(open_bus(SIM), retries=0)
        with bus:
            bus.inject_errors(0.5, np.random.default_rng(seed))
            lost = []
            for k in range(40):
                try:
                    bus.read_states([1])
                except ChecksumError:
                    lost.append(k)
            return lost

    assert lost_reads(3) == lost_reads(3)
    assert lost_reads(3) != lost_reads(4)
    with pytest.raises(ConfigError, match="probability"):
        FaultInjectingBus(MockBus([1])).inject_errors(1.5, np.random.default_rng(0))


def test_a_corrupt_goal_write_is_lost_without_an_error(bus: FaultInjectingBus) -> None:
    bus.set_torque([1, 2], True)
    undo = bus.inject_errors(1.0, np.random.default_rng(1))
    bus.write_goals({1: 0.5, 2: -0.3})  # a sync write has no reply: nobody can tell
    assert isinstance(bus.inner, SimBus)
    assert bus.last_duration_s == pytest.approx(bus.inner.goal_write_time(2)) and bus.last_duration_s > 0
    undo()
    bus.wait(0.3)
    states = bus.read_states([1, 2])
    assert abs(states[1].position) < 0.05 and abs(states[2].position) < 0.05  # the goals never arrived
    snap = bus.snapshot()
    assert (snap.errors_injected, snap.checksum_errors, snap.retries) == (1, 0, 0)


def test_a_disconnected_servo_fails_after_fail_after_reads(bus: FaultInjectingBus) -> None:
    bus.set_torque([1, 2], True)
    undo = bus.disconnect(2)
    assert bus.ping(2) is None and bus.ping(1) is not None
    assert [p.id for p in bus.scan(range(4))] == [1]  # pings never mark failed
    bus.write_goals({1: 0.4, 2: 0.4})  # reaches servo 1 only, and says nothing
    for _ in range(bus.fail_after):
        with pytest.raises(NoReplyError, match=r"\[2\]"):
            bus.read_states([1, 2])
    assert bus.failed == {2}
    with pytest.raises(ServoFailedError) as info:
        bus.read_states([2])
    assert info.value.servo_ids == [2]
    with pytest.raises(ServoFailedError):
        bus.write_goals({2: 0.1})
    bus.wait(0.5)
    states = bus.read_states([1])  # the others still answer
    assert states[1].position == pytest.approx(0.4, abs=0.05)
    undo()
    assert bus.ping(2) is not None
    with pytest.raises(ServoFailedError):  # failed stays failed, as on a serial bus
        bus.read_states([2])
    attempts = bus.fail_after * (1 + bus.retries)
    snap = bus.snapshot()
    # Pings unanswered too: servo 2 twice while silent, ids 0 and 3 of the scan.
    assert (snap.no_reply, snap.retries) == (attempts + 4, bus.fail_after * bus.retries)


def test_an_answer_resets_the_missed_reads(bus: FaultInjectingBus) -> None:
    for _ in range(3):
        undo = bus.disconnect(1)
        for _ in range(bus.fail_after - 1):
            with pytest.raises(NoReplyError):
                bus.read_states([1])
        undo()
        bus.read_states([1])
    assert bus.failed == frozenset()


def test_settings_come_from_the_wrapped_bus_or_the_arguments() -> None:
    bus = FaultInjectingBus(open_bus(SIM + "&retries=0&fail_after=2"))
    with bus:
        assert (bus.retries, bus.fail_after) == (0, 2)
        bus.inject_errors(1.0, np.random.default_rng(0))
        for _ in range(2):
            with pytest.raises(ChecksumError):
                bus.read_states([1])
        assert bus.failed == {1} and bus.snapshot().retries == 0
    explicit = FaultInjectingBus(open_bus(SIM + "&retries=0"), retries=3, fail_after=9)
    with explicit:
        assert (explicit.retries, explicit.fail_after) == (3, 9)
    with pytest.raises(ConfigError, match=r"retries must be >= 0 and fail_after >= 1, got -1, 5"):
        FaultInjectingBus(MockBus([1]), retries=-1)
    with pytest.raises(ConfigError, match=r"^sim://\?robot=pan_tilt.*fail_after=0: retries must be"):
        open_bus(SIM + "&fail_after=0")


def test_snapshot_adds_to_the_inner_counters() -> None:
    bus = FaultInjectingBus(MockBus([1]))  # MockBus keeps no counters of its own
    with bus:
        bus.disconnect(1)
        with pytest.raises(NoReplyError):
            bus.read_states([1])
        assert bus.snapshot() == BusSnapshot(retries=2, no_reply=3)


def test_the_twin_counts_transactions_as_the_serial_buses_do() -> None:
    with open_bus(SIM) as bus:
        assert bus.ping(1) is not None and bus.ping(7) is None
        bus.set_torque([1, 2], True)
        bus.write_goals({1: 0.1})
        bus.read_states([1, 2])
        assert bus.snapshot() == BusSnapshot(transactions=5, no_reply=1)


@pytest.mark.parametrize("vendor", VENDORS)
def test_every_reply_corrupt_gets_the_same_reaction_as_on_a_serial_bus(vendor: str) -> None:
    """A serial bus whose replies all fail their checksum, and the twin with bus errors at a rate
    of 1: the same errors read after read, the same counters, the same servos marked failed."""
    serial, servos = identified(vendor, [1, 2], retries=2, fail_after=3)
    servos.tamper = only_on_sync_read(lambda replies: joined([(i, corrupt(r)) for i, r in replies]))
    twin = FaultInjectingBus(open_bus(SIM + "&retries=2&fail_after=3"))
    twin.inject_errors(1.0, np.random.default_rng(0))

    def outcome(bus: SerialServoBus | FaultInjectingBus) -> list[str]:
        seen = []
        for _ in range(4):
            try:
                bus.read_states([1, 2])
                seen.append("ok")
            except (ChecksumError, ServoFailedError) as exc:
                seen.append(type(exc).__name__)
        return seen

    assert outcome(serial) == outcome(twin) == ["ChecksumError"] * 3 + ["ServoFailedError"]
    s, t = serial.snapshot(), twin.snapshot()
    counted = (s.retries, s.no_reply, s.checksum_errors)
    assert counted == (t.retries, t.no_reply, t.checksum_errors) == (6, 9, 18)
    assert serial.stats.failed_servos == sorted(twin.failed) == [1, 2]


class WatchdogBus(MockBus):
    """A MockBus whose servos have a watchdog; it records what reaches it."""

    def __init__(self, ids: list[int]) -> None:
        super().__init__(ids)
        self.armed: list[tuple[list[int], float]] = []
        self.disarmed: list[list[int]] = []

    def arm_watchdog(self, ids: Iterable[int], timeout_s: float) -> bool:
        self.armed.append((list(ids), timeout_s))
        return True

    def disarm_watchdog(self, ids: Iterable[int]) -> None:
        self.disarmed.append(list(ids))


def test_watchdog_instructions_pass_through_to_the_servos_that_answer() -> None:
    inner = WatchdogBus([1, 2])
    bus = FaultInjectingBus(inner)
    bus.disconnect(2)
    assert bus.arm_watchdog([1, 2], 0.1) is True
    bus.disarm_watchdog([1, 2])
    assert (inner.armed, inner.disarmed) == ([([1], 0.1)], [[1]])
