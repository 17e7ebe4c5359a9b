"""The edge: everything that talks to a servo bus, behind `open_bus(url)`."""

from __future__ import annotations

from typing import Any

from hw_adapters.base import (
    SHUTDOWN_FAULTS,
    BusError,
    BusSnapshot,
    ChecksumError,
    ConfigError,
    MalformedPacketError,
    NoReplyError,
    PingInfo,
    PortLostError,
    ProtocolError,
    ServoBus,
    ServoFailedError,
    ServoFault,
    ServoState,
    StatusError,
    TwinError,
    WrongIdError,
)
from hw_adapters.faulty import FaultInjectingBus
from hw_adapters.schemes import BUSES, bus_schemes

__all__ = [
    "BUSES",
    "SCHEMES",
    "BusError",
    "BusSnapshot",
    "ChecksumError",
    "FaultInjectingBus",
    "MalformedPacketError",
    "NoReplyError",
    "ProtocolError",
    "StatusError",
    "WrongIdError",
    "ConfigError",
    "PingInfo",
    "PortLostError",
    "ServoBus",
    "ServoFailedError",
    "ServoFault",
    "SHUTDOWN_FAULTS",
    "ServoState",
    "TwinError",
    "bus_schemes",
    "open_bus",
]


def __getattr__(name: str) -> object:
    # SCHEMES was a fixed tuple; schemes now come from the registry, read when asked.
    if name == "SCHEMES":
        return tuple(bus_schemes())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_bus(url: str, **context: Any) -> ServoBus:
    """Open the bus a URL names, with the opener registered for its scheme.

    `sim://` takes `plant=` and `clock=` from the runtime. Raises ConfigError for
    an unknown scheme (listing the registered ones) or an option the opener does
    not take.
    """
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()  # URL schemes are case-insensitive (RFC 3986)
    if not sep:
        raise ConfigError(
            f"{url!r} is not a bus URL; expected SCHEME://..., schemes: {', '.join(bus_schemes())}"
        )
    if scheme not in BUSES:
        raise ConfigError(f"unknown bus scheme {scheme!r} in {url!r}; registered: {', '.join(bus_schemes())}")
    return BUSES.get(scheme)(url, **context)
