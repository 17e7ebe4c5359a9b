"""Every bus URL the project ships passes the ServoBus conformance checks.

The checks run per (bus × property), so a failure names both. The checker
itself is tested too: a bus broken in one way fails the check for that way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from hw_adapters import BusError, ConfigError, ServoBus, TwinError, open_bus
from hw_adapters.conformance import CHECKS, Check, ConformanceError, check_bus
from hw_adapters.mock import MockBus
from servo_core.catalogue import servo_spec
from sim_models.plant import Mount, Plant
from sim_models.robots import actuated_joints, robot_urdf_text
from sim_models.servo.device import VirtualServo

Settle = Callable[[ServoBus, float], None]


@dataclass
class PlantRig:
    """`sim://` over a plant built here, on a clock owned here: what the runtime does in a run."""

    ids: tuple[int, ...] = (5, 9)
    model: str = "xl330-m288"
    plants: list[Plant] = field(default_factory=list)
    clocks: dict[ServoBus, list[float]] = field(default_factory=dict)

    def open(self) -> ServoBus:
        urdf = robot_urdf_text("pan_tilt")
        mounts = [
            Mount(joint, VirtualServo(servo_spec(self.model), i))
            for joint, i in zip(actuated_joints(urdf), self.ids, strict=True)
        ]
        plant = Plant(urdf, mounts)
        self.plants.append(plant)
        now = [0.0]
        bus = open_bus("sim://", plant=plant, clock=lambda: now[0])
        self.clocks[bus] = now
        return bus

    def settle(self, bus: ServoBus, seconds: float) -> None:
        self.clocks[bus][0] += seconds

    def close(self) -> None:
        for plant in self.plants:
            plant.close()


@pytest.fixture
def plant_rig() -> Iterator[PlantRig]:
    rig = PlantRig()
    yield rig
    rig.close()


URL_BUSES: dict[str, tuple[int, ...]] = {
    "mock://?ids=1,2,3": (1, 2, 3),
    "sim://?robot=pan_tilt&model=xl430-w250&ids=1,2": (1, 2),
    "sim://?robot=arm6&model=sts3215&ids=1-6": (1, 2, 3, 4, 5, 6),
}
PLANT_BUS = "sim:// + plant (pan_tilt, xl330-m288)"


def _cases() -> list[object]:
    cases = []
    for bus in [*URL_BUSES, PLANT_BUS]:
        for check in CHECKS:
            cases.append(pytest.param(bus, check, id=f"{bus} :: {check.__name__}"))
    return cases


@pytest.mark.parametrize(("bus", "check"), _cases())
def test_bus_conforms(bus: str, check: Check, plant_rig: PlantRig) -> None:
    if bus == PLANT_BUS:
        check_bus(plant_rig.open, plant_rig.ids, settle=plant_rig.settle, checks=[check])
    else:
        check_bus(lambda: open_bus(bus), URL_BUSES[bus], checks=[check])


def test_plant_bus_has_no_clock_of_its_own(plant_rig: PlantRig) -> None:
    with plant_rig.open() as bus, pytest.raises(TwinError, match="no clock"):
        bus.wait(0.1)


def test_plant_bus_follows_the_runtime_clock(plant_rig: PlantRig) -> None:
    with plant_rig.open() as bus:
        plant = plant_rig.plants[-1]
        bus.read_states(plant_rig.ids)
        assert plant.time == 0.0  # transactions do not advance the runtime's clock
        plant_rig.settle(bus, 0.25)
        bus.read_states(plant_rig.ids)
        assert plant.time == pytest.approx(0.25)


def test_mock_bus_ping_of_present_id_after_close_raises() -> None:
    bus = open_bus("mock://?ids=1,2")
    bus.close()
    with pytest.raises(BusError, match="closed"):
        bus.ping(1)


def test_mock_bus_ping_of_absent_id_after_close_raises() -> None:
    bus = open_bus("mock://?ids=1,2")
    bus.close()
    with pytest.raises(BusError, match="closed"):
        bus.ping(7)


def test_standalone_sim_bus_wait_after_close_raises_bus_error() -> None:
    bus = open_bus("sim://?robot=pan_tilt&ids=1,2")
    bus.close()
    with pytest.raises(BusError):
        bus.wait(0.1)


def test_sim_bus_rejects_a_nan_goal_with_a_twin_error() -> None:
    with open_bus("sim://?robot=pan_tilt&ids=1,2") as bus:
        bus.set_torque([1], True)
        with pytest.raises(TwinError):
            bus.write_goals({1: math.nan})


# -- the checker itself ------------------------------------------------------------
class DeafBus(MockBus):
    """Accepts goals and never moves."""

    def write_goals(self, goals: Mapping[int, float]) -> None:
        self._begin("write", list(goals))


class AlwaysOnBus(MockBus):
    """Moves to its goals whether torque is on or not."""

    def write_goals(self, goals: Mapping[int, float]) -> None:
        self._begin("write", list(goals))
        self._position.update(goals)


class ImmortalBus(MockBus):
    """close() turns torque off but the bus keeps answering."""

    def close(self) -> None:
        for i in self._torque:
            self._torque[i] = False


class ExtraStatesBus(MockBus):
    """read_states answers for every servo, not only those asked."""

    def read_states(self, ids):  # type: ignore[no-untyped-def]
        ids = list(ids)
        return super().read_states(list(self._goal)) if ids else {}


class TalkativeBus(MockBus):
    """Answers a ping at any id."""

    def ping(self, servo_id: int):  # type: ignore[no-untyped-def]
        return super().ping(min(self._goal)) if servo_id not in self._goal else super().ping(servo_id)


class CrashingBus(MockBus):
    """read_states fails with a raw exception from below the seam."""

    def read_states(self, ids):  # type: ignore[no-untyped-def]
        raise OSError("device reports readiness to read but returned no data")


class LenientBus(MockBus):
    """read_states of an absent servo returns nothing for it instead of raising."""

    def read_states(self, ids):  # type: ignore[no-untyped-def]
        return super().read_states([i for i in ids if i in self._goal])


BROKEN: list[tuple[type[MockBus], str]] = [
    (DeafBus, "goals_reached"),
    (AlwaysOnBus, "torque_off_holds_still"),
    (ImmortalBus, "close_is_final"),
    (ExtraStatesBus, "read_states_reports"),
    (TalkativeBus, "ping_identifies"),
    (CrashingBus, "read_states_reports"),
    (LenientBus, "read_unknown_raises"),
]


@pytest.mark.parametrize(("cls", "failing"), BROKEN, ids=[cls.__name__ for cls, _ in BROKEN])
def test_broken_bus_fails_the_right_check(cls: type[MockBus], failing: str) -> None:
    ids = (1, 2, 3)
    by_name = {c.__name__: c for c in CHECKS}
    with pytest.raises(ConformanceError, match=failing) as info:
        check_bus(lambda: cls(ids), ids, checks=[by_name[failing]])
    assert info.value.check == failing
    assert isinstance(info.value, TwinError)


def test_unexpected_exception_is_chained() -> None:
    with pytest.raises(ConformanceError, match="OSError") as info:
        check_bus(lambda: CrashingBus([1]), [1])
    assert isinstance(info.value.__cause__, OSError)


def test_check_bus_runs_all_checks_and_stops_at_the_first_failure() -> None:
    seen: list[str] = []

    def open_fn() -> ServoBus:
        return ImmortalBus([1, 2])

    def settle(bus: ServoBus, seconds: float) -> None:
        seen.append(f"settle {seconds}")

    with pytest.raises(ConformanceError) as info:
        check_bus(open_fn, [1, 2], settle=settle)
    assert info.value.check == "close_is_final"  # the first to fail, after every earlier check passed
    assert seen == ["settle 1.0", "settle 1.0"]  # goals_reached and torque_off_holds_still used settle


@pytest.mark.parametrize(
    ("ids", "tolerance"),
    [([], 0.035), ([1, 1], 0.035), ([253], 0.035), ([-1], 0.035), (list(range(253)), 0.035), ([1], 0.0)],
)
def test_check_bus_rejects_bad_arguments(ids: Sequence[int], tolerance: float) -> None:
    with pytest.raises(ConfigError):
        check_bus(lambda: MockBus([1]), ids, tolerance_rad=tolerance)


def test_absent_id_is_below_the_ids_when_252_is_taken() -> None:
    asked: list[int] = []

    class Recording(MockBus):
        def ping(self, servo_id: int):  # type: ignore[no-untyped-def]
            asked.append(servo_id)
            return super().ping(servo_id)

    check_bus(lambda: Recording([250, 252]), [250, 252], checks=[CHECKS[0]])
    assert asked == [250, 252, 0]
