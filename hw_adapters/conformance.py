"""A conformance checker for ServoBus adapters, meant for every adapter's CI.

Each check opens a fresh bus, exercises one property of the seam and closes
the bus again; the first property that does not hold raises ConformanceError
naming it. A third-party adapter runs it against a rig it knows::

    from hw_adapters.conformance import check_bus
    from my_adapter import open_my_bus

    def test_my_bus_conforms():
        check_bus(lambda: open_my_bus("/dev/ttyUSB0"), ids=[1, 2, 3])

A bus with no clock of its own (one driven by a runtime) passes `settle`, a
function that lets `seconds` of its time pass, e.g. by advancing the clock it
was opened with. Every servo in `ids` must be free to move 0.2 rad either way
from where it starts; the servos move by at most that much. Units are SI:
rad, rad/s, °C, V, s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from hw_adapters.base import BusError, ConfigError, PingInfo, ServoBus, ServoState, TwinError
from sim_models.servo.catalogue import catalogue

__all__ = ["CHECKS", "Check", "ConformanceError", "Rig", "check_bus"]

Settle = Callable[[ServoBus, float], None]
SETTLE_S = 1.0  # simulated or wall time given to a move (s)


class ConformanceError(TwinError):
    """A bus broke a property of the ServoBus seam; `check` names the property."""

    def __init__(self, check: str, detail: str) -> None:
        super().__init__(f"bus conformance check {check!r} failed: {detail}")
        self.check = check
        self.detail = detail


class _Violation(Exception):
    """Raised inside a check; check_bus turns it into a ConformanceError."""


@dataclass(frozen=True)
class Rig:
    """What every check needs: how to open a fresh bus, the servos on it, and time."""

    open_bus: Callable[[], ServoBus]
    ids: tuple[int, ...]
    absent_id: int  # an id in 0..252 that no servo answers
    settle: Settle
    tolerance_rad: float


Check = Callable[[Rig], None]


def _require(ok: bool, detail: str) -> None:
    if not ok:
        raise _Violation(detail)


def _goal_offsets(ids: Sequence[int]) -> dict[int, float]:
    """A different small move per id: 0.1..0.2 rad, alternating in sign (rad)."""
    n = len(ids)
    return {i: (-1.0 if k % 2 == 0 else 1.0) * (0.1 + 0.1 * (k + 1) / n) for k, i in enumerate(ids)}


def _check_duration(bus: ServoBus, what: str) -> None:
    d = bus.last_duration_s
    _require(
        isinstance(d, int | float) and math.isfinite(d) and d >= 0, f"after {what}, last_duration_s={d!r}"
    )


def _check_state(servo_id: int, state: object) -> None:
    _require(isinstance(state, ServoState), f"state of servo {servo_id} is {state!r}, not a ServoState")
    assert isinstance(state, ServoState)
    _require(state.id == servo_id, f"state asked for servo {servo_id} carries id {state.id}")
    for field in ("position", "velocity"):
        value = getattr(state, field)
        _require(math.isfinite(value), f"servo {servo_id}: {field}={value!r} is not finite")
    _require(0.0 <= state.temperature <= 100.0, f"servo {servo_id}: temperature {state.temperature!r} °C")
    _require(
        math.isfinite(state.voltage) and state.voltage > 0, f"servo {servo_id}: voltage {state.voltage!r} V"
    )


def _positions(bus: ServoBus, ids: Sequence[int]) -> dict[int, float]:
    states = bus.read_states(ids)
    return {i: states[i].position for i in ids}


# -- the properties ------------------------------------------------------------
def ping_identifies(rig: Rig) -> None:
    """ping returns each servo's id and a catalogued model, and None where no servo is."""
    known = catalogue()
    with rig.open_bus() as bus:
        for i in rig.ids:
            info = bus.ping(i)
            _require(isinstance(info, PingInfo), f"ping({i}) returned {info!r}, expected a PingInfo")
            assert isinstance(info, PingInfo)
            _require(info.id == i, f"ping({i}) answered with id {info.id}")
            spec = known.get(info.model)
            _require(spec is not None, f"ping({i}): model {info.model!r} is not one of {', '.join(known)}")
            assert spec is not None
            _require(
                info.model_number == spec.model_number,
                f"ping({i}): model number {info.model_number} but {info.model} is {spec.model_number}",
            )
            _check_duration(bus, "ping")
        got = bus.ping(rig.absent_id)
        _require(got is None, f"ping({rig.absent_id}) (no servo there) returned {got!r}, expected None")


def scan_finds_ids(rig: Rig) -> None:
    """scan finds exactly the servos on the bus, over all ids and over a given list."""
    with rig.open_bus() as bus:
        asks: tuple[tuple[str, Callable[[], list[PingInfo]]], ...] = (
            ("scan()", bus.scan),
            (f"scan({[*rig.ids, rig.absent_id]})", lambda: bus.scan([*rig.ids, rig.absent_id])),
        )
        for label, scan in asks:
            found = scan()
            _require(all(isinstance(p, PingInfo) for p in found), f"{label} returned {found!r}")
            got = sorted(p.id for p in found)
            _require(got == sorted(rig.ids), f"{label} found ids {got}, expected {sorted(rig.ids)}")
            _check_duration(bus, label)


def read_states_reports(rig: Rig) -> None:
    """read_states returns a plausible ServoState for every id asked, and only those."""
    with rig.open_bus() as bus:
        for ask in (list(rig.ids), rig.ids[::2]):
            states = bus.read_states(iter(ask))  # any iterable of ids
            _require(
                isinstance(states, dict) and set(states) == set(ask),
                f"read_states({list(ask)}) returned states for {sorted(states)}",
            )
            for i in ask:
                _check_state(i, states[i])
            _check_duration(bus, "read_states")


def read_unknown_raises(rig: Rig) -> None:
    """read_states raises BusError when a servo asked does not answer, and the bus survives it."""
    absent = rig.absent_id
    with rig.open_bus() as bus:
        for ask in ([absent], [rig.ids[0], absent]):
            try:
                bus.read_states(ask)
            except BusError:
                pass
            else:
                raise _Violation(f"read_states({ask}) did not raise BusError ({absent} is absent)")
        _require(set(bus.read_states(rig.ids)) == set(rig.ids), "the bus failed after one BusError")


def goals_reached(rig: Rig) -> None:
    """With torque on, each servo reaches its goal (within tolerance) once time passes."""
    with rig.open_bus() as bus:
        bus.set_torque(rig.ids, True)
        start = _positions(bus, rig.ids)
        goals = {i: start[i] + d for i, d in _goal_offsets(rig.ids).items()}
        bus.write_goals(goals)
        _check_duration(bus, "write_goals")
        rig.settle(bus, SETTLE_S)
        end = _positions(bus, rig.ids)
        for i in rig.ids:
            _require(
                abs(end[i] - goals[i]) <= rig.tolerance_rad,
                f"servo {i}: goal {goals[i]:+.4f} rad, at {end[i]:+.4f} rad after {SETTLE_S} s "
                f"(started at {start[i]:+.4f}, tolerance {rig.tolerance_rad} rad)",
            )


def torque_off_holds_still(rig: Rig) -> None:
    """With torque off, goals do not move the servos (by more than the tolerance)."""
    with rig.open_bus() as bus:
        bus.set_torque(rig.ids, False)
        start = _positions(bus, rig.ids)
        bus.write_goals({i: start[i] + d for i, d in _goal_offsets(rig.ids).items()})
        rig.settle(bus, SETTLE_S)
        end = _positions(bus, rig.ids)
        for i in rig.ids:
            _require(
                abs(end[i] - start[i]) < rig.tolerance_rad,
                f"servo {i} moved {end[i] - start[i]:+.4f} rad with torque off",
            )


def close_is_final(rig: Rig) -> None:
    """After close every operation raises BusError, and close is idempotent."""
    i, absent = rig.ids[0], rig.absent_id
    bus = rig.open_bus()
    try:
        bus.set_torque(rig.ids, True)
    finally:
        bus.close()
    operations: tuple[tuple[str, Callable[[], object]], ...] = (
        (f"ping({i})", lambda: bus.ping(i)),
        (f"ping({absent}) of an absent id", lambda: bus.ping(absent)),
        (f"scan({list(rig.ids)})", lambda: bus.scan(rig.ids)),
        ("read_states", lambda: bus.read_states(rig.ids)),
        ("write_goals", lambda: bus.write_goals({i: 0.0})),
        ("set_torque", lambda: bus.set_torque(rig.ids, False)),
    )
    for label, op in operations:
        try:
            result = op()
        except BusError:
            continue
        raise _Violation(f"after close, {label} returned {result!r} instead of raising BusError")
    try:
        bus.close()
    except Exception as exc:
        raise _Violation(f"a second close raised {type(exc).__name__}: {exc}") from exc


class _Probe(Exception):
    pass


def context_manager_closes(rig: Rig) -> None:
    """`with bus:` yields the bus, lets exceptions through and closes it on the way out."""
    bus = rig.open_bus()
    try:
        try:
            with bus as entered:
                _require(entered is bus, f"__enter__ returned {entered!r}, not the bus")
                bus.set_torque(rig.ids, True)
                raise _Probe
        except _Probe:
            pass
        else:
            raise _Violation("leaving `with` swallowed the exception raised inside it")
        try:
            bus.read_states(rig.ids)
        except BusError:
            return
        raise _Violation("after leaving `with`, read_states did not raise BusError")
    finally:
        bus.close()


def empty_write_ok(rig: Rig) -> None:
    """write_goals({}) is a valid, empty transaction."""
    with rig.open_bus() as bus:
        bus.set_torque(rig.ids, True)
        bus.write_goals({})
        _check_duration(bus, "write_goals({})")
        _require(set(bus.read_states(rig.ids)) == set(rig.ids), "the bus failed after an empty write")


CHECKS: tuple[Check, ...] = (
    ping_identifies,
    scan_finds_ids,
    read_states_reports,
    read_unknown_raises,
    goals_reached,
    torque_off_holds_still,
    close_is_final,
    context_manager_closes,
    empty_write_ok,
)


def _absent_id(ids: Sequence[int]) -> int:
    free = [i for i in range(max(ids) + 1, 253)] + [i for i in range(0, 253) if i not in ids]
    return free[0]


def check_bus(
    open_bus_fn: Callable[[], ServoBus],
    ids: Sequence[int],
    *,
    settle: Settle | None = None,
    tolerance_rad: float = 0.035,
    checks: Iterable[Check] = CHECKS,
) -> None:
    """Run `checks` (all of CHECKS by default), each on a fresh bus from `open_bus_fn()`.

    `ids` are the servos on the bus (distinct, 0..252, not all of them);
    `settle(bus, seconds)` lets time pass (default: `bus.wait`); goals count
    as reached within `tolerance_rad`. Raises ConformanceError naming the first
    property that does not hold (an unexpected exception counts as a failure
    of the check that raised it, chained as its cause), ConfigError for bad
    arguments.
    """
    ids = tuple(ids)
    if not ids or len(set(ids)) != len(ids) or not all(0 <= i <= 252 for i in ids) or len(ids) > 252:
        raise ConfigError(f"check_bus needs distinct servo ids in 0..252 leaving one free, got {list(ids)}")
    if not (math.isfinite(tolerance_rad) and tolerance_rad > 0):
        raise ConfigError(f"tolerance_rad must be a positive number of rad, got {tolerance_rad!r}")
    rig = Rig(open_bus_fn, ids, _absent_id(ids), settle or (lambda bus, s: bus.wait(s)), tolerance_rad)
    for check in checks:
        name = check.__name__
        try:
            check(rig)
        except _Violation as exc:
            raise ConformanceError(name, str(exc)) from exc.__cause__
        except ConformanceError:
            raise
        except Exception as exc:
            raise ConformanceError(name, f"raised {type(exc).__name__}: {exc}") from exc
