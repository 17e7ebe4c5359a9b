"""`twin run --bus URL` takes real servos or an emulator; the twin's own sim:// is refused with advice."""

from __future__ import annotations

import pytest

from servo_core.errors import ConfigError
from twin.scenario import bus_url
from twin.scenario.bus_url import check_run_bus, run_bus_schemes


def test_the_schemes_are_the_registered_ones_but_the_twins() -> None:
    assert run_bus_schemes() == ["dynamixel", "feetech", "mock"]


@pytest.mark.parametrize(
    "url",
    [
        "dynamixel:///dev/ttyUSB0?baud=1000000",
        "feetech:///dev/ttyACM0",
        "mock://?ids=1-2",
        "DYNAMIXEL:///tmp/x",
    ],
)
def test_a_bus_of_servos_is_accepted(url: str) -> None:
    check_run_bus(url)  # no error


@pytest.mark.parametrize("url", ["sim://", "sim://?robot=pan_tilt&ids=1,2", "SIM://", " sim://"])
def test_the_twins_bus_is_refused_saying_what_to_do(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_run_bus(url)
    assert str(caught.value) == (
        f"--bus {url}: --bus runs the scenario against real servos or an emulator on the wall clock "
        "(dynamixel://, feetech://, mock://; an emulator from `twin emulate --link /tmp/x` as "
        "dynamixel:///tmp/x); the twin's own bus needs no --bus: leave --bus out to run on the twin"
    )


def test_an_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        check_run_bus("canbus://can0")
    assert str(caught.value) == (
        "--bus canbus://can0: unknown bus scheme 'canbus'; --bus takes dynamixel://, feetech://, mock://"
    )


@pytest.mark.parametrize("url", ["/dev/ttyUSB0", "dynamixel:/dev/ttyUSB0", "://x", ""])
def test_a_url_without_a_scheme_is_refused(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_run_bus(url)
    assert str(caught.value) == (
        f"--bus {url!r} is not a bus URL: expected SCHEME://..., e.g. dynamixel:///dev/ttyUSB0?baud=1000000; "
        "--bus takes dynamixel://, feetech://, mock://"
    )


def test_schemes_registered_by_plugins_are_taken_and_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bus_url, "bus_schemes", lambda: ["can", "dynamixel", "sim"])
    check_run_bus("can://can0")  # no error
    with pytest.raises(ConfigError, match=r"--bus takes can://, dynamixel://$"):
        check_run_bus("feetech:///dev/ttyACM0")
