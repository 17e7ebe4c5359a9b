"""What the Dynamixel and Feetech buses share: transactions that survive bad bytes.

A transaction sends one instruction and collects the status packets it calls
for (or the blocks of one combined status, Dynamixel's Fast Sync Read). A
missing, partial or corrupt reply, or one from the wrong id, is counted and
the transaction retried (`retries` times); only then does it raise, with the
typed error of what went wrong. A servo that fails `fail_after` transactions
in a row is marked failed: from then on every transaction that needs it
raises ServoFailedError at once, so the control core can react (hold the
others, or stop safely) instead of stalling on it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hw_adapters.base import (
    BusError,
    BusSnapshot,
    ChecksumError,
    ConfigError,
    NoReplyError,
    OptionType,
    PingInfo,
    ServoBus,
    ServoFailedError,
    ServoState,
    StatusError,
    WrongIdError,
    parse_bus_url,
)
from hw_adapters.serial_link import SerialLink
from servo_core.catalogue import SERVO_MODELS, model_name, servo_spec
from servo_core.protocol import Protocol, StateBlock
from servo_core.units import rad_to_ticks

__all__ = ["BusStats", "open_link", "SERIAL_OPTIONS", "SerialServoBus"]

SERIAL_OPTIONS: dict[str, OptionType] = {
    "baud": int,
    "retries": int,
    "fail_after": int,
    "latency_ms": float,
    "timeout_ms": float,
    "state": str,  # the state block read each cycle: full (default), motion, position
}


@dataclass
class BusStats:
    transactions: int = 0
    retries: int = 0
    no_reply: int = 0
    checksum_errors: int = 0
    wrong_id: int = 0
    status_errors: int = 0
    failed_servos: list[int] = field(default_factory=list)


@dataclass
class _Known:
    model_number: int
    model: str
    firmware: int
    return_delay_s: float
    resolution: int  # ticks per turn: the catalogue's, or the protocol's default for unknown models


class SerialServoBus(ServoBus):
    """A ServoBus over a SerialLink; subclasses speak one protocol."""

    protocol: Protocol  # set by each subclass
    default_return_delay_s = 0.0  # assumed before a servo's own register has been read

    def __init__(
        self, link: SerialLink, *, retries: int = 2, fail_after: int = 5, state: str = "full"
    ) -> None:
        if retries < 0 or fail_after < 1:
            raise ConfigError(f"retries must be >= 0 and fail_after >= 1, got {retries}, {fail_after}")
        self.state_block: StateBlock = self.protocol.state_block(state)
        self.state_address = self.protocol.table[self.state_block.register].address
        self.link = link
        self.retries = retries
        self.fail_after = fail_after
        self.stats = BusStats()
        self.known: dict[int, _Known] = {}
        self._misses: dict[int, int] = {}
        self._failed: set[int] = set()
        self._torqued: set[int] = set()
        self._closed = False

    # -- protocol hooks ---------------------------------------------------------------------
    def _new_parser(self) -> Any:
        raise NotImplementedError

    def _status_size(self, n_params: int) -> int:
        # Unstuffed size; a Dynamixel reply lengthened by byte stuffing is completed by
        # the transaction, which reads what the packet's length field says is missing.
        return self.protocol.status_size(n_params)

    def _raise_for_status(self, packet: Any) -> None:
        raise NotImplementedError

    def _identify(self, servo_id: int, ping_reply: Any) -> tuple[int, int, float]:
        """(model number, firmware, return delay in s) of a servo that answered a ping."""
        raise NotImplementedError

    def _ping_packet(self, servo_id: int) -> tuple[bytes, int]:
        raise NotImplementedError

    def _state_read(self, ids: list[int]) -> tuple[bytes, int]:
        """The sync read of the state block, and its length per servo."""
        raise NotImplementedError

    def _decode_state(self, servo_id: int, reply: Any) -> ServoState:
        """The state of a servo from its status packet (or block) answering the state read."""
        raise NotImplementedError

    def _goal_write(self, ticks: Mapping[int, int]) -> bytes:
        raise NotImplementedError

    def _torque_write(self, ids: list[int], enabled: bool) -> bytes:
        raise NotImplementedError

    # -- transactions -------------------------------------------------------------------------
    def _require_open(self) -> None:
        if self._closed:
            raise BusError(f"the {self.protocol.name} bus on {self.link.port} is closed")

    def _delay(self, ids: Iterable[int]) -> float:
        return sum(
            self.known[i].return_delay_s if i in self.known else self.default_return_delay_s for i in ids
        )

    def transaction(
        self,
        packet: bytes,
        expect: list[tuple[int, int]],
        retries: int | None = None,
        probe: bool = False,
        *,
        parser: Callable[[], Any] | None = None,
        reply_bytes: int | None = None,
    ) -> dict:
        """Send `packet` and collect one status per (id, params length) in `expect`, in order.

        Retries the whole transaction on any missing, corrupt or stray reply. Raises
        NoReplyError, ChecksumError or WrongIdError once retries are spent, StatusError
        when a servo answers with an error code, ServoFailedError for failed servos.
        A `probe` (a ping: is anyone there?) neither counts misses nor refuses failed ids.
        A combined reply (one packet that the servos in `expect` answer in turn) passes its
        own `parser` factory and `reply_bytes`: a servo missing there silences those after
        it, so only the first missing one is blamed (and counted as a miss).
        """
        self._require_open()
        failed = self._failed.intersection(i for i, _ in expect)
        if failed and not probe:
            raise ServoFailedError(failed)
        want = {i for i, _ in expect}
        chain = parser is not None
        # A combined reply waits for the first servo's return delay only: the blocks follow back to back.
        delays = self._delay([expect[0][0]] if chain and expect else want)
        new_parser = parser if parser is not None else self._new_parser
        if reply_bytes is None:
            reply_bytes = sum(self._status_size(n) for _, n in expect)
        attempts = 1 + (self.retries if retries is None else retries)
        problem: BusError = NoReplyError("no reply")
        got: dict[int, Any] = {}
        missing: list[int] = []
        for attempt in range(attempts):
            if attempt:
                self.stats.retries += 1
            self.stats.transactions += 1
            raw = self.link.transact(packet, reply_bytes, delays)
            if not expect:
                return {}
            parser_ = new_parser()
            got = {}
            stray = None
            replies = parser_.feed(raw)
            # Byte stuffing (Dynamixel) can make replies longer than expected: fetch the
            # bytes the last, incomplete packet says are still on their way.
            for _ in range(len(expect)):
                more = getattr(parser_, "missing", 0)
                if not more:
                    break
                replies += parser_.feed(self.link.read_more(more, self.link.read_timeout_s(more)))
            for reply in replies:
                if reply.id in want and reply.id not in got:
                    got[reply.id] = reply
                else:
                    self.stats.wrong_id += 1
                    stray = reply.id
            crc = getattr(parser_, "crc_errors", 0) or getattr(parser_, "checksum_errors", 0)
            self.stats.checksum_errors += crc
            missing = [i for i, _ in expect if i not in got]
            if chain:
                missing = missing[:1]
            else:
                missing.sort()
            if not missing:
                for i in want:
                    self._misses[i] = 0
                for reply in got.values():
                    try:
                        self._raise_for_status(reply)
                    except StatusError:
                        self.stats.status_errors += 1
                        raise
                return got
            self.stats.no_reply += 1
            # What went wrong this time: the last attempt's reason is the one reported.
            if crc:
                problem = ChecksumError(f"corrupt reply from servo(s) {missing} on {self.link.port}")
            elif stray is not None:
                problem = WrongIdError(f"a status packet came from id {stray}, not from {sorted(want)}")
            elif _pending_bytes(parser_):
                problem = NoReplyError(f"only part of a reply from servo(s) {missing} on {self.link.port}")
            else:
                problem = NoReplyError(f"no reply from servo(s) {missing} on {self.link.port}")
            if chain and len(got) + 1 < len(expect):
                after = [i for i, _ in expect if i not in got and i not in missing]
                problem = type(problem)(f"{problem} (after it in the chain, {after} could not answer)")
        for i in () if probe else missing:
            self._misses[i] = self._misses.get(i, 0) + 1
            if self._misses[i] >= self.fail_after and i not in self._failed:
                self._failed.add(i)
                self.stats.failed_servos = sorted(self._failed)
        raise problem

    def _timed(self, start: float) -> None:
        self.last_duration_s = time.perf_counter() - start

    # -- ServoBus -----------------------------------------------------------------------------
    def ping(self, servo_id: int) -> PingInfo | None:
        start = time.perf_counter()
        try:
            packet, n = self._ping_packet(servo_id)
            try:
                reply = self.transaction(packet, [(servo_id, n)], retries=0, probe=True)[servo_id]
            except (NoReplyError, ChecksumError, WrongIdError):
                return None
            number, firmware, delay = self._identify(servo_id, reply)
            model = model_name(self.protocol, number)
            resolution = (
                servo_spec(model).resolution_ticks
                if model in SERVO_MODELS
                else self.protocol.default_resolution
            )
            self.known[servo_id] = _Known(number, model, firmware, delay, resolution)
            return PingInfo(servo_id, number, self.known[servo_id].model, firmware)
        finally:
            self._timed(start)

    def scan(self, ids: Iterable[int] = range(0, 253)) -> list[PingInfo]:
        start = time.perf_counter()
        found = [info for info in (self.ping(i) for i in ids) if info is not None]
        self._timed(start)
        return found

    def _resolution(self, servo_id: int) -> int:
        known = self.known.get(servo_id)
        return known.resolution if known is not None else self.protocol.default_resolution

    def snapshot(self) -> BusSnapshot:
        s = self.stats
        return BusSnapshot(
            transactions=s.transactions,
            retries=s.retries,
            no_reply=s.no_reply,
            checksum_errors=s.checksum_errors,
            wrong_id=s.wrong_id,
            status_errors=s.status_errors,
        )

    def _ensure_known(self, ids: list[int]) -> None:
        for i in ids:
            if i not in self.known and i not in self._failed and self.ping(i) is None:
                raise NoReplyError(f"servo {i} does not answer on {self.link.port}")

    def read_states(self, ids: Iterable[int]) -> dict[int, ServoState]:
        start = time.perf_counter()
        ids = list(ids)
        self._ensure_known(ids)
        packet, length = self._state_read(ids)
        try:
            replies = self.transaction(packet, [(i, length) for i in ids])
            return {i: self._decode_state(i, replies[i]) for i in ids}
        finally:
            self._timed(start)

    def write_goals(self, goals: Mapping[int, float]) -> None:
        start = time.perf_counter()
        ticks = {}
        for i, angle in goals.items():
            if not (math.isfinite(angle) and -math.pi <= angle < math.pi):
                raise ConfigError(f"servo {i}: goal {angle!r} rad is outside the servo's range [-pi, pi)")
            ticks[i] = rad_to_ticks(angle, self._resolution(i))
        failed = self._failed.intersection(ticks)
        if failed:
            raise ServoFailedError(failed)
        if ticks:
            self.transaction(self._goal_write(ticks), [])
        self._timed(start)

    def set_torque(self, ids: Iterable[int], enabled: bool) -> None:
        start = time.perf_counter()
        ids = list(ids)
        if ids:
            self.transaction(self._torque_write(ids, enabled), [])
            (self._torqued.update if enabled else self._torqued.difference_update)(ids)
        self._timed(start)

    def close(self) -> None:
        """Torque off every servo this bus touched (best effort on a lost port), then release it."""
        if self._closed:
            return
        try:
            ids = sorted(self._torqued | set(self.known))
            if ids and self.link.is_open:
                self.link.transact(self._torque_write(ids, False), 0)
        except BusError:
            pass  # the port is gone: nothing more can be sent
        finally:
            self._closed = True
            self.link.close()


def _pending_bytes(parser: Any) -> int:
    """Bytes a parser holds as the start of a packet that never completed."""
    return int(getattr(parser, "pending", getattr(parser, "buffered", 0)))


def open_link(
    url: str, default_baud: int, options: Mapping[str, OptionType] = SERIAL_OPTIONS
) -> tuple[SerialLink, dict[str, Any]]:
    """The serial link a `scheme:///dev/x?baud=...` URL names, and its other `options`."""
    _, path, opts = parse_bus_url(url, options)
    if not path:
        raise ConfigError(f"{url}: no serial port; e.g. dynamixel:///dev/ttyUSB0?baud=1000000")
    baud = int(opts.pop("baud", default_baud))
    latency = float(opts.pop("latency_ms", 2.0)) / 1000.0
    margin = float(opts.pop("timeout_ms", 2.0)) / 1000.0
    link = SerialLink(path, baud, latency_s=latency, margin_s=margin)
    return link, opts
