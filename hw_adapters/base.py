"""The seam between the control core and any servo bus.

A `ServoBus` speaks SI units (rad, rad/s, A, °C, V) and servo ids. The
adapter that knows the device converts to ticks and register units; joint
names, offsets, directions and limits belong to the control core.

Every operation records how long it took on the bus in `last_duration_s`:
the wire time the twin charges, or the wall time a real port took. The
driver yields that much simulated time, so one control loop runs on virtual
time and on the wall clock alike.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

from sim_models.errors import BusError, ConfigError, TwinError

__all__ = [
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
    "parse_bus_url",
]


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


class ServoFault(enum.IntFlag):
    """Hardware alarms in one vocabulary, whatever the vendor's bit layout."""

    NONE = 0
    INPUT_VOLTAGE = 1
    SENSOR = 2
    OVERHEAT = 4
    ENCODER = 8
    ELECTRICAL_SHOCK = 16
    OVERLOAD = 32


# Alarms after which a servo's firmware has cut its torque: it no longer follows goals.
SHUTDOWN_FAULTS = ServoFault.OVERHEAT | ServoFault.ELECTRICAL_SHOCK | ServoFault.OVERLOAD


@dataclass(frozen=True, slots=True)
class ServoState:
    """One servo's state at the moment it was read (output shaft, servo frame)."""

    id: int
    position: float  # rad, 0 at the centre tick
    velocity: float  # rad/s
    load: float  # fraction of maximum torque, -1..1
    current: float | None  # A, when the servo reports it
    temperature: float  # °C
    voltage: float  # V
    faults: ServoFault
    moving: bool


@dataclass(frozen=True, slots=True)
class PingInfo:
    id: int
    model_number: int
    model: str
    firmware: int


class ServoBus(ABC):
    """A bus of servos. Use as a context manager: closing turns torque off."""

    last_duration_s: float = 0.0

    @abstractmethod
    def ping(self, servo_id: int) -> PingInfo | None:
        """The servo's identity, or None when nothing answers at that id."""

    @abstractmethod
    def scan(self, ids: Iterable[int] = range(0, 253)) -> list[PingInfo]:
        """Every servo that answers among `ids`."""

    @abstractmethod
    def read_states(self, ids: Iterable[int]) -> dict[int, ServoState]:
        """The state of many servos in one transaction. BusError if one does not answer."""

    @abstractmethod
    def write_goals(self, goals: Mapping[int, float]) -> None:
        """Goal positions (rad) for many servos in one transaction."""

    @abstractmethod
    def set_torque(self, ids: Iterable[int], enabled: bool) -> None:
        """Torque on or off for each id."""

    def wait(self, seconds: float) -> None:
        """Let `seconds` pass on the bus's own clock (scripts and tests)."""
        raise TwinError(f"{type(self).__name__} has no clock of its own; time comes from the runtime")

    @abstractmethod
    def close(self) -> None:
        """Torque off on every known servo, then release the bus. Idempotent."""

    def __enter__(self) -> ServoBus:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def parse_bus_url(url: str, valid_options: Mapping[str, type]) -> tuple[str, str, dict[str, object]]:
    """Split `scheme://path?k=v` and type-check the options against `valid_options`.

    Raises ConfigError naming the bad option and listing the valid ones.
    """
    parts = urlsplit(url)
    path = parts.netloc + parts.path
    options: dict[str, object] = {}
    for key, raw in parse_qsl(parts.query, keep_blank_values=True):
        if key in options:
            raise ConfigError(f"{url}: option {key!r} is given twice")
        if key not in valid_options:
            valid = ", ".join(sorted(valid_options)) or "none"
            raise ConfigError(f"{url}: unknown option {key!r}; valid options for {parts.scheme}://: {valid}")
        kind = valid_options[key]
        try:
            options[key] = kind(raw)
        except ValueError:
            raise ConfigError(f"{url}: option {key}={raw!r} is not a valid {kind.__name__}") from None
    return parts.scheme.lower(), path, options


def parse_ids(text: str) -> list[int]:
    """'1,2,5-7' -> [1, 2, 5, 6, 7]; ConfigError on anything else."""
    ids: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                ids.extend(range(lo, hi + 1))
            elif part.strip():
                ids.append(int(part))
    except ValueError:
        raise ConfigError(f"servo ids must look like '1,2,5-7', got {text!r}") from None
    bad = [i for i in ids if not 0 <= i <= 252]
    if bad or len(set(ids)) != len(ids) or not ids:
        raise ConfigError(f"servo ids must be distinct numbers 0..252, got {text!r}")
    return ids
