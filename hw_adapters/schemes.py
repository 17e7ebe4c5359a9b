"""Bus URL schemes, by registration: `servotwin.buses` maps a scheme to its opener.

An opener is a callable `(url: str, **context) -> ServoBus`; it rejects the
context keys it does not take with a ConfigError naming those it does. The
built-ins register here in code (and, identically, through the package's
entry points); each imports its adapter only when called, so a serial run
never loads the simulation.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from servo_core.errors import ConfigError
from servo_core.plugins import Registry

if TYPE_CHECKING:
    from hw_adapters.base import ServoBus

__all__ = [
    "BUSES",
    "BusOpener",
    "bus_schemes",
    "check_context",
    "open_dynamixel",
    "open_feetech",
    "open_mock",
    "open_sim",
]

BusOpener = Callable[..., "ServoBus"]


def _check_opener(obj: object) -> str | None:
    return None if callable(obj) else f"a bus opener must be callable (url, **context), got {obj!r}"


BUSES: Registry[BusOpener] = Registry("servotwin.buses", "bus scheme", _check_opener)


def bus_schemes() -> list[str]:
    """The registered bus URL schemes, sorted."""
    return BUSES.names()


def check_context(scheme: str, context: Mapping[str, Any], takes: Collection[str]) -> None:
    """ConfigError when `context` holds keys the opener of `scheme` does not take."""
    unknown = sorted(set(context) - set(takes))
    if unknown:
        taken = " and ".join(f"{k}=" for k in sorted(takes)) if takes else "nothing"
        raise ConfigError(f"{scheme}:// takes no {', '.join(unknown)}; it takes {taken}")


def open_sim(url: str, **context: Any) -> ServoBus:
    """`sim://`: `plant=` and `clock=` from the runtime, or a standalone plant from the URL."""
    check_context("sim", context, ("plant", "clock"))
    from hw_adapters.sim import open_sim_bus

    return open_sim_bus(url, **context)


def open_mock(url: str, **context: Any) -> ServoBus:
    """`mock://`: ideal servos; `handler=` scripts faults."""
    check_context("mock", context, ("handler",))
    from hw_adapters.mock import open_mock_bus

    return open_mock_bus(url, **context)


def open_dynamixel(url: str, **context: Any) -> ServoBus:
    """`dynamixel:///dev/ttyUSB0?baud=...`: Dynamixel X servos over Protocol 2.0."""
    check_context("dynamixel", context, ())
    from hw_adapters.dynamixel.bus import open_dynamixel_bus

    return open_dynamixel_bus(url)


def open_feetech(url: str, **context: Any) -> ServoBus:
    """`feetech:///dev/ttyACM0?baud=...`: Feetech STS servos."""
    check_context("feetech", context, ())
    from hw_adapters.feetech.bus import open_feetech_bus

    return open_feetech_bus(url)


for _scheme, _opener in (
    ("dynamixel", open_dynamixel),
    ("feetech", open_feetech),
    ("mock", open_mock),
    ("sim", open_sim),
):
    BUSES.register(_scheme, _opener)
