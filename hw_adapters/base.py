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

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

from servo_core.errors import (
    BusError,
    ChecksumError,
    ConfigError,
    MalformedPacketError,
    NoReplyError,
    PortLostError,
    ProtocolError,
    ServoFailedError,
    StatusError,
    TwinError,
    WrongIdError,
)
from servo_core.state import SHUTDOWN_FAULTS, ServoFault, ServoState

__all__ = [
    "BusError",
    "BusSnapshot",
    "ChecksumError",
    "MalformedPacketError",
    "NoReplyError",
    "ProtocolError",
    "StatusError",
    "WrongIdError",
    "ConfigError",
    "OptionType",
    "OptionValue",
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


@dataclass(frozen=True, slots=True)
class BusSnapshot:
    """A bus's counters at one moment; zero where a bus keeps no such counter."""

    transactions: int = 0
    retries: int = 0
    no_reply: int = 0
    checksum_errors: int = 0
    wrong_id: int = 0
    status_errors: int = 0
    errors_injected: int = 0


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

    def scan(self, ids: Iterable[int] = range(0, 253)) -> list[PingInfo]:
        """Every servo that answers among `ids`: one ping each; `last_duration_s` is their total."""
        found, total = [], 0.0
        for i in ids:
            info = self.ping(i)
            total += self.last_duration_s
            if info is not None:
                found.append(info)
        self.last_duration_s = total
        return found

    @abstractmethod
    def read_states(self, ids: Iterable[int]) -> dict[int, ServoState]:
        """The state of many servos in one transaction. BusError if one does not answer."""

    @abstractmethod
    def write_goals(self, goals: Mapping[int, float]) -> None:
        """Goal positions (rad) for many servos in one transaction."""

    @abstractmethod
    def set_torque(self, ids: Iterable[int], enabled: bool) -> None:
        """Torque on or off for each id."""

    def arm_watchdog(self, ids: Iterable[int], timeout_s: float) -> bool:
        """Have each servo stop by itself when no instruction reaches it for `timeout_s` (s).

        True when the servos' firmware has such a watchdog and it is now armed (it acts
        while torque is on); False when the bus or its servos have none, and nothing was
        sent. A servo whose watchdog fired holds still and refuses goals until
        `disarm_watchdog` clears it.
        """
        return False

    def disarm_watchdog(self, ids: Iterable[int]) -> None:
        """Turn each servo's watchdog off, clearing one that fired. Nothing for a bus without one."""
        return None

    def snapshot(self) -> BusSnapshot:
        """The bus's counters now (all zero for a bus that keeps none)."""
        return BusSnapshot()

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


# The types a bus URL option may take, and the values parse_bus_url gives for them.
OptionType = type[str] | type[int] | type[float]
OptionValue = str | int | float


def parse_bus_url(
    url: str, valid_options: Mapping[str, OptionType]
) -> tuple[str, str, dict[str, OptionValue]]:
    """Split `scheme://path?k=v` and type-check the options against `valid_options`.

    Raises ConfigError naming the bad option and listing the valid ones.
    """
    parts = urlsplit(url)
    path = parts.netloc + parts.path
    options: dict[str, OptionValue] = {}
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
