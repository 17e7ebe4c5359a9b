"""The edge: everything that talks to a servo bus, behind `open_bus(url)`."""

from __future__ import annotations

from typing import Any

from hw_adapters.base import (
    SHUTDOWN_FAULTS,
    BusError,
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

SCHEMES = ("sim", "mock", "dynamixel", "feetech")

__all__ = [
    "SCHEMES",
    "BusError",
    "ChecksumError",
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
    "open_bus",
]


def open_bus(url: str, **context: Any) -> ServoBus:
    """Open the bus a URL names. `sim://` takes `plant=` and `clock=` from the runtime.

    Raises ConfigError for an unknown scheme or option, listing the valid ones.
    """
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()  # URL schemes are case-insensitive (RFC 3986)
    if not sep:
        raise ConfigError(f"{url!r} is not a bus URL; expected SCHEME://..., schemes: {', '.join(SCHEMES)}")
    if scheme == "sim":
        from hw_adapters.sim import open_sim_bus

        unknown = sorted(set(context) - {"plant", "clock"})
        if unknown:
            raise ConfigError(f"sim:// takes no {', '.join(unknown)}; it takes plant= and clock=")
        return open_sim_bus(url, **context)
    if scheme == "mock":
        from hw_adapters.mock import open_mock_bus

        unknown = sorted(set(context) - {"handler"})
        if unknown:
            raise ConfigError(f"mock:// takes no {', '.join(unknown)}; it takes handler=")
        return open_mock_bus(url, **context)
    if scheme in ("dynamixel", "feetech"):
        if context:
            raise ConfigError(f"{scheme}:// takes no {', '.join(sorted(context))}")
        if scheme == "dynamixel":
            from hw_adapters.dynamixel.bus import open_dynamixel_bus

            return open_dynamixel_bus(url)
        from hw_adapters.feetech.bus import open_feetech_bus

        return open_feetech_bus(url)
    raise ConfigError(f"unknown bus scheme {scheme!r} in {url!r}; valid schemes: {', '.join(SCHEMES)}")
