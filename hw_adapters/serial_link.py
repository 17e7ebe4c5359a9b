"""The half-duplex serial line that the Dynamixel and Feetech adapters share.

One `SerialLink` owns one port. A transaction clears stale input, writes an
instruction packet and reads the expected number of reply bytes. The read
blocks inside the port (pyserial waits in select/poll or a queue) with a
timeout computed from the wire time of every byte that crosses the line
(`len(packet) + reply_bytes`, 10 bits per byte at the baud rate), the
answering servos' return delays, the USB adapter's latency timer
(`latency_s`) and a fixed margin (`margin_s`). Nothing here polls
`in_waiting` or spins; the vendor SDKs do, this does not.

A short reply is returned as it is, never raised: the protocol's parser
decides whether it is a missing or a truncated status packet (NoReplyError,
MalformedPacketError). Losing the port (SerialException, OSError, or a
termios error when the USB adapter is unplugged) raises BusError and closes
the link for good.

`time.perf_counter` measures `stats.last_transaction_s`, the wall time a
transaction took: at this edge wall time is the bus's real duration.

A link is used by one thread at a time; it holds no lock.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import serial

from hw_adapters.base import BusError, ConfigError, PortLostError
from servo_core.protocol import bytes_time

try:  # termios exists on POSIX only; pyserial lets termios.error escape from reset_input_buffer
    import termios

    _PORT_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError, termios.error)
except ImportError:  # pragma: no cover - Windows
    _PORT_ERRORS = (serial.SerialException, OSError)
# Opening a port can also fail with ValueError (pyserial's answer to a bad baud or timeout).
_OPEN_ERRORS: tuple[type[BaseException], ...] = (*_PORT_ERRORS, ValueError)

__all__ = ["LinkStats", "SerialLink"]

# A write hands bytes to the driver; it only blocks when the output buffer is full.
# One second plus the wire time of a 4 KiB tty buffer is a stall, not a slow bus.
_WRITE_TIMEOUT_BASE_S = 1.0
_WRITE_BUFFER_BYTES = 4096


@dataclass(slots=True)
class LinkStats:
    """Counters of one link since it was opened."""

    bytes_out: int = 0
    bytes_in: int = 0
    transactions: int = 0  # calls of transact(), write-only ones included
    short_replies: int = 0  # reads (transact or read_more) that returned fewer bytes than asked
    last_transaction_s: float = 0.0  # wall time of the last transact(), plus any read_more() after it


def _errno_text(exc: BaseException) -> str | None:
    """'No such file or directory' from an OSError or a termios.error, else None."""
    code = getattr(exc, "errno", None)
    if not isinstance(code, int) and len(exc.args) >= 1 and isinstance(exc.args[0], int):
        code = exc.args[0]  # termios.error carries (errno, text) in args only
    if isinstance(code, int) and code > 0:
        return os.strerror(code)
    return None


def _reason(exc: BaseException) -> str:
    """The plainest words for why a port failed, looking through pyserial's wrapping."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        text = _errno_text(cause)
        if text:
            return text
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


def _check_non_negative(name: str, value: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


class SerialLink:
    """One half-duplex servo bus over a serial port (or anything pyserial's serial_for_url opens).

    Never busy-waits: every read blocks in the port with a timeout computed from how many
    bytes are expected, the baud rate, the servos' return delays and a fixed margin for the
    USB adapter's latency timer.
    """

    def __init__(
        self,
        port: str,
        baud: int,
        *,
        latency_s: float = 0.002,
        margin_s: float = 0.002,
        open_port: Callable[..., Any] | None = None,
    ) -> None:
        if not isinstance(baud, int) or isinstance(baud, bool) or baud <= 0:
            raise ConfigError(
                f"serial port {port}: baud must be a positive number of bits per second, got {baud!r}"
            )
        self.port = port
        self.baud = baud
        self.latency_s = _check_non_negative("latency_s", latency_s)
        self.margin_s = _check_non_negative("margin_s", margin_s)
        self.stats = LinkStats()
        self._lost_reason: str | None = None
        self._closed = False
        opener = open_port if open_port is not None else serial.serial_for_url
        first_timeout = self.latency_s + self.margin_s
        write_timeout = _WRITE_TIMEOUT_BASE_S + self.expected_time_s(_WRITE_BUFFER_BYTES)
        try:
            self._port = opener(port, baudrate=baud, timeout=first_timeout, write_timeout=write_timeout)
        except _OPEN_ERRORS as exc:
            raise ConfigError(f"cannot open serial port {port}: {_reason(exc)}") from None
        self._timeout: float | None = getattr(self._port, "timeout", None)

    # -- timing ---------------------------------------------------------------------------------

    def expected_time_s(self, n_bytes: int, return_delays_s: float = 0.0) -> float:
        """Wire time of `n_bytes` (10 bits per byte at the baud rate) plus the servos' return delays."""
        return bytes_time(n_bytes, self.baud) + return_delays_s

    def read_timeout_s(self, n_bytes: int, return_delays_s: float = 0.0) -> float:
        """The timeout transact() gives a read when `n_bytes` cross the line in all:
        expected_time_s(n_bytes, return_delays_s) + latency_s + margin_s. For read_more() callers."""
        return self.expected_time_s(n_bytes, return_delays_s) + self.latency_s + self.margin_s

    # -- I/O --------------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return not self._closed

    def transact(self, packet: bytes, reply_bytes: int, return_delays_s: float = 0.0) -> bytes:
        """Clear stale input, write `packet`, read up to `reply_bytes` and return what arrived.

        The reply may be short (or empty): the caller's parser decides what that means.
        reply_bytes == 0 writes only (broadcast, sync write) and returns b"".
        """
        if reply_bytes < 0:
            raise ValueError(f"reply_bytes must be >= 0, got {reply_bytes}")
        if not return_delays_s >= 0:  # also rejects NaN
            raise ValueError(f"return_delays_s must be >= 0, got {return_delays_s}")
        port = self._require_open()
        start = time.perf_counter()
        try:
            port.reset_input_buffer()
            self._write(port, packet)
            reply = b""
            if reply_bytes:
                self._set_timeout(port, self.read_timeout_s(len(packet) + reply_bytes, return_delays_s))
                reply = bytes(port.read(reply_bytes))
        except _PORT_ERRORS as exc:
            raise self._lose(exc) from exc
        stats = self.stats
        stats.transactions += 1
        stats.bytes_in += len(reply)
        if len(reply) < reply_bytes:
            stats.short_replies += 1
        stats.last_transaction_s = time.perf_counter() - start
        return reply

    def read_more(self, n: int, timeout_s: float) -> bytes:
        """Read up to `n` more bytes, waiting at most `timeout_s` in the port.

        For callers that learn a reply's length from its header. The time it takes is added to
        stats.last_transaction_s; a short read counts as a short reply.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if not timeout_s >= 0:  # also rejects NaN
            raise ValueError(f"timeout_s must be >= 0, got {timeout_s}")
        port = self._require_open()
        if n == 0:
            return b""
        start = time.perf_counter()
        try:
            self._set_timeout(port, float(timeout_s))
            data = bytes(port.read(n))
        except _PORT_ERRORS as exc:
            raise self._lose(exc) from exc
        self.stats.bytes_in += len(data)
        if len(data) < n:
            self.stats.short_replies += 1
        self.stats.last_transaction_s += time.perf_counter() - start
        return data

    def write(self, data: bytes) -> None:
        """Write `data` without reading anything back and without clearing input."""
        port = self._require_open()
        try:
            self._write(port, data)
        except _PORT_ERRORS as exc:
            raise self._lose(exc) from exc

    def close(self) -> None:
        """Release the port. Idempotent; every later call raises BusError."""
        if self._closed:
            return
        self._closed = True
        self._close_port_quietly()

    def __enter__(self) -> SerialLink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if not self._closed else "closed"
        return f"SerialLink({self.port!r}, {self.baud}, {state})"

    # -- internals --------------------------------------------------------------------------------

    def _require_open(self) -> Any:
        if self._closed:
            if self._lost_reason is not None:
                raise PortLostError(f"serial port {self.port} is closed: it was lost ({self._lost_reason})")
            raise BusError(f"serial port {self.port} is closed")
        return self._port

    def _write(self, port: Any, data: bytes) -> None:
        written = port.write(data)
        if isinstance(written, int) and written != len(data):
            raise serial.SerialException(f"wrote {written} of {len(data)} bytes")
        self.stats.bytes_out += len(data)

    def _set_timeout(self, port: Any, timeout_s: float) -> None:
        # Setting pyserial's timeout reconfigures the port (termios calls): only when it changes.
        if timeout_s != self._timeout:
            port.timeout = timeout_s
            self._timeout = timeout_s

    def _lose(self, exc: BaseException) -> BusError:
        reason = _reason(exc)
        self._lost_reason = reason
        self._closed = True
        self._close_port_quietly()
        return PortLostError(f"serial port {self.port} was lost: {reason}")

    def _close_port_quietly(self) -> None:
        # A port that is gone may fail to close; it is released all the same.
        with contextlib.suppress(Exception):
            self._port.close()
