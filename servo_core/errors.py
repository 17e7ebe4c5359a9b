"""The one exception hierarchy of ServoTwin.

It lives in the leaf package `servo_core`, so that `sim_models`, `hw_adapters`
and `twin` can all raise it without imports pointing upwards; `twin` and
`hw_adapters` re-export it.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "BusError",
    "ChecksumError",
    "ConfigError",
    "MalformedPacketError",
    "NoReplyError",
    "PortLostError",
    "ProtocolError",
    "ServoFailedError",
    "StatusError",
    "TwinError",
    "WrongIdError",
]


class TwinError(Exception):
    """Root of every error ServoTwin raises on purpose."""


class ConfigError(TwinError):
    """Bad input: a scenario, a URL, a catalogue entry or a robot description."""


class BusError(TwinError):
    """A servo bus failed: no reply, a corrupt reply, a closed port."""


class ProtocolError(BusError):
    """Bytes on the wire that do not make a valid packet of the protocol."""


class ChecksumError(ProtocolError):
    """A packet whose CRC (Dynamixel) or checksum (Feetech) does not match its bytes."""


class MalformedPacketError(ProtocolError):
    """A packet with an impossible length, a missing field or a truncated body."""


class NoReplyError(BusError):
    """No status packet, or only part of one, arrived within the timeout."""


class PortLostError(BusError):
    """The port went away mid-run (unplugged, powered off): nothing more can be sent on it."""


class WrongIdError(BusError):
    """A status packet arrived from another id than the one asked."""


class StatusError(BusError):
    """A servo answered with an error code in its status packet (result fail, range, access, ...)."""

    def __init__(self, servo_id: int, code: int, message: str) -> None:
        super().__init__(f"servo {servo_id}: {message}")
        self.servo_id = servo_id
        self.code = code


class ServoFailedError(BusError):
    """Servos that failed too many transactions in a row: the bus no longer asks them."""

    def __init__(self, servo_ids: Iterable[int]) -> None:
        self.servo_ids = sorted(servo_ids)
        super().__init__(f"servo(s) {self.servo_ids} failed repeatedly and are marked failed")
