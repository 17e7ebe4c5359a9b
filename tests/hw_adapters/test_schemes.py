"""Bus URL schemes come from the `servotwin.buses` registry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hw_adapters import BUSES, SCHEMES, ConfigError, ServoBus, bus_schemes, open_bus
from hw_adapters.mock import MockBus
from hw_adapters.schemes import check_context, open_dynamixel, open_feetech, open_mock, open_sim


def test_built_in_schemes_are_registered() -> None:
    assert {"dynamixel", "feetech", "mock", "sim"} <= set(bus_schemes())
    assert set(SCHEMES) == set(bus_schemes())
    for name, opener in [
        ("dynamixel", open_dynamixel),
        ("feetech", open_feetech),
        ("mock", open_mock),
        ("sim", open_sim),
    ]:
        assert BUSES.get(name) is opener


def test_unknown_scheme_lists_the_registered_ones() -> None:
    with pytest.raises(ConfigError) as info:
        open_bus("x://ttyUSB0")
    assert str(info.value) == (
        "unknown bus scheme 'x' in 'x://ttyUSB0'; registered: dynamixel, feetech, mock, sim"
    )


@pytest.fixture
def toy_scheme() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    calls: list[tuple[str, dict[str, Any]]] = []

    def open_toy(url: str, **context: Any) -> ServoBus:
        check_context("toy", context, ("speed",))
        calls.append((url, context))
        return MockBus([1, 2])

    BUSES.register("toy", open_toy, origin="a test")
    try:
        yield calls
    finally:
        BUSES.unregister("toy")


def test_a_registered_scheme_opens(toy_scheme: list[tuple[str, dict[str, Any]]]) -> None:
    assert "toy" in bus_schemes()
    with open_bus("TOY://anything", speed=3) as bus:
        assert [p.id for p in bus.scan(range(4))] == [1, 2]
    assert toy_scheme == [("TOY://anything", {"speed": 3})]
    with pytest.raises(ConfigError, match="toy:// takes no plant; it takes speed="):
        open_bus("toy://x", plant=object())


def test_a_scheme_cannot_be_claimed_twice() -> None:
    with pytest.raises(ConfigError, match="claimed twice"):
        BUSES.register("sim", lambda url, **context: MockBus([1]), origin="a test")
    BUSES.register("sim", open_sim)  # the identical opener again is fine


@pytest.mark.parametrize("scheme", ["dynamixel", "feetech"])
def test_serial_schemes_take_no_context(scheme: str) -> None:
    with pytest.raises(ConfigError, match=f"{scheme}:// takes no plant; it takes nothing"):
        open_bus(f"{scheme}:///dev/null", plant=object())
