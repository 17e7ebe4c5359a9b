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
from where it starts; the checks move none further. Units: rad, °C, V, s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

from hw_adapters.base import BusError, ConfigError, PingInfo, ServoBus, ServoState, TwinError
from servo_core.catalogue import catalogue

__all__ = ["CHECKS", "SETTLE_S", "Check", "ConformanceError", "Rig", "check_bus"]

Settle = Callable[[ServoBus, float], None]
SETTLE_S = 1.0  # time given to a move (s)


class ConformanceError(TwinError):
    """A bus broke a property of the ServoBus seam; `check` names the property."""

    def __init__(self, check: str, detail: str) -> None:
        super().__init__(f"bus conformance check {check!r} failed: {detail}")
        self.check = check
        self.detail = detail


class _Violation(Exception): ...  # raised inside a check; check_bus makes it a ConformanceError


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
    """A different small move per id: 0.1..0.2 rad, alternating in sign."""
    return {i: (-1) ** (k + 1) * (0.1 + 0.1 * (k + 1) / len(ids)) for k, i in enumerate(ids)}


def _check_duration(bus: ServoBus, what: str) -> None:
    d = bus.last_duration_s
    _require(isinstance(d, int | float) and d >= 0 and math.isfinite(d), f"{what}: last_duration_s={d!r}")


def _check_state(i: int, state: object) -> None:
    if not isinstance(state, ServoState):
        raise _Violation(f"state of servo {i} is {state!r}, not a ServoState")
    _require(state.id == i, f"the state asked for servo {i} carries id {state.id}")
    _require(math.isfinite(state.position), f"servo {i}: position {state.position!r} rad")
    _require(math.isfinite(state.velocity), f"servo {i}: velocity {state.velocity!r} rad/s")
    _require(0.0 <= state.temperature <= 100.0, f"servo {i}: temperature {state.temperature!r} °C")
    _require(state.voltage > 0 and math.isfinite(state.voltage), f"servo {i}: voltage {state.voltage!r} V")


def _positions(bus: ServoBus, ids: Sequence[int]) -> dict[int, float]:
    states = bus.read_states(ids)
    return {i: states[i].position for i in ids}


def _expect_bus_error(label: str, op: Callable[[], object]) -> None:
    try:
        result = op()
    except BusError:
        return
    raise _Violation(f"{label} returned {result!r} instead of raising BusError")


# -- the properties ------------------------------------------------------------
def ping_identifies(rig: Rig) -> None:
    """ping returns each servo's id and a catalogued model, and None where no servo is."""
    known = catalogue()
    with rig.open_bus() as bus:
        for i in rig.ids:
            info = bus.ping(i)
            if not isinstance(info, PingInfo):
                raise _Violation(f"ping({i}) returned {info!r}, expected a PingInfo")
            _require(info.id == i, f"ping({i}) answered with id {info.id}")
            spec = known.get(info.model)
            if spec is None:
                raise _Violation(f"ping({i}): model {info.model!r} is not one of {', '.join(known)}")
            _require(
                info.model_number == spec.model_number,
                f"ping({i}): model number {info.model_number}, but {info.model} is {spec.model_number}",
            )
            _check_duration(bus, "ping")
        got = bus.ping(rig.absent_id)
        _require(got is None, f"ping({rig.absent_id}) (no servo there) returned {got!r}, expected None")


def scan_finds_ids(rig: Rig) -> None:
    """scan finds exactly the servos on the bus, over all ids and over a given list."""
    ask = [*rig.ids, rig.absent_id]
    with rig.open_bus() as bus:
        for label, found in (("scan()", bus.scan()), (f"scan({ask})", bus.scan(ask))):
            _require(all(isinstance(p, PingInfo) for p in found), f"{label} returned {found!r}")
            got = sorted(p.id for p in found)
            _require(got == sorted(rig.ids), f"{label} found ids {got}, expected {sorted(rig.ids)}")
        _check_duration(bus, "scan")


def read_states_reports(rig: Rig) -> None:
    """read_states returns a plausible ServoState for every id asked, and only those."""
    with rig.open_bus() as bus:
        for ask in (rig.ids, rig.ids[::2]):
            states = bus.read_states(iter(ask))  # any iterable of ids
            got = sorted(states) if isinstance(states, dict) else states
            _require(got == sorted(ask), f"read_states({list(ask)}) returned states for {got!r}")
            for i in ask:
                _check_state(i, states[i])
            _check_duration(bus, "read_states")


def read_unknown_raises(rig: Rig) -> None:
    """read_states raises BusError when a servo asked does not answer, and the bus survives it."""
    with rig.open_bus() as bus:
        for ask in ([rig.absent_id], [rig.ids[0], rig.absent_id]):
            _expect_bus_error(f"read_states({ask}), {rig.absent_id} absent", partial(bus.read_states, ask))
        _require(set(bus.read_states(rig.ids)) == set(rig.ids), "read_states failed after one BusError")


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
                f"servo {i}: goal {goals[i]:+.4f} rad, at {end[i]:+.4f} rad {SETTLE_S} s later "
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
            moved = end[i] - start[i]
            _require(abs(moved) < rig.tolerance_rad, f"servo {i} moved {moved:+.4f} rad with torque off")


def close_is_final(rig: Rig) -> None:
    """After close every operation raises BusError, and close is idempotent."""
    i, absent = rig.ids[0], rig.absent_id
    bus = rig.open_bus()
    try:
        bus.set_torque(rig.ids, True)
    finally:
        bus.close()
    _expect_bus_error(f"after close, ping({i})", lambda: bus.ping(i))
    _expect_bus_error(f"after close, ping({absent}) of an absent id", lambda: bus.ping(absent))
    _expect_bus_error("after close, scan", lambda: bus.scan(rig.ids))
    _expect_bus_error("after close, read_states", lambda: bus.read_states(rig.ids))
    _expect_bus_error("after close, write_goals", lambda: bus.write_goals({i: 0.0}))
    _expect_bus_error("after close, set_torque", lambda: bus.set_torque(rig.ids, False))
    try:
        bus.close()
    except Exception as exc:
        raise _Violation(f"a second close raised {type(exc).__name__}: {exc}") from exc


class _Probe(Exception): ...


def context_manager_closes(rig: Rig) -> None:
    """`with bus:` yields the bus, lets exceptions through and closes the bus on the way out."""
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
        _expect_bus_error("after leaving `with`, read_states", lambda: bus.read_states(rig.ids))
    finally:
        bus.close()


def empty_write_ok(rig: Rig) -> None:
    """write_goals({}) is a valid, empty transaction."""
    with rig.open_bus() as bus:
        bus.set_torque(rig.ids, True)
        bus.write_goals({})
        _check_duration(bus, "write_goals({})")
        _require(set(bus.read_states(rig.ids)) == set(rig.ids), "read_states failed after an empty write")


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


def check_bus(
    open_bus_fn: Callable[[], ServoBus],
    ids: Sequence[int],
    *,
    settle: Settle | None = None,
    tolerance_rad: float = 0.035,
    checks: Iterable[Check] = CHECKS,
) -> None:
    """Run `checks` (all of CHECKS by default), each on a fresh bus from `open_bus_fn()`.

    `ids`: the servos on the bus (distinct, in 0..252, leaving one id free).
    `settle(bus, seconds)` lets time pass (default: `bus.wait`). Goals count as
    reached within `tolerance_rad` (rad). Raises ConformanceError naming the
    first property that does not hold (an unexpected exception fails the check
    that raised it and is chained as the cause); ConfigError for bad arguments.
    """
    ids = tuple(ids)
    free = [i for i in [*range(max(ids, default=0) + 1, 253), *range(253)] if i not in ids]
    if not ids or len(set(ids)) != len(ids) or not all(0 <= i <= 252 for i in ids) or not free:
        raise ConfigError(f"check_bus needs distinct servo ids in 0..252, leaving one free; got {list(ids)}")
    if not (tolerance_rad > 0 and math.isfinite(tolerance_rad)):
        raise ConfigError(f"tolerance_rad must be a positive number of rad, got {tolerance_rad!r}")
    rig = Rig(open_bus_fn, ids, free[0], settle or (lambda bus, s: bus.wait(s)), tolerance_rad)
    for check in checks:
        name = getattr(check, "__name__", repr(check))
        try:
            check(rig)
        except _Violation as exc:
            raise ConformanceError(name, str(exc)) from exc.__cause__
        except ConformanceError:
            raise
        except Exception as exc:
            raise ConformanceError(name, f"raised {type(exc).__name__}: {exc}") from exc
