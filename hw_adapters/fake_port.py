"""`ScriptedPort`: a test double for the part of pyserial's API that SerialLink uses.

Each `write` calls `respond(packet)`; what it returns becomes readable input:

- bytes: queued for the following reads (b"" or None: no reply at all);
- an exception: the port is lost; the next read, write or reset_input_buffer (and every one
  after it) raises it. `fail(error)` loses the port without a write.

`read(n)` never sleeps. It returns up to n queued bytes at once, and fewer when fewer are
queued, as a real port does once its timeout has passed. It records the port's `timeout`
at each call in `read_timeouts`, so a test can check the timeout a link computed.

    def respond(packet: bytes) -> bytes | Exception | None:
        if packet == PING_1:
            return STATUS_1[:5]                        # partial reply
        if packet == PING_2:
            return STATUS_FROM_ID_3                    # reply from the wrong id
        if packet == READ_1:
            return bytes([STATUS_1[0] ^ 0xFF]) + STATUS_1[1:]  # corrupt reply
        if packet == PING_9:
            return serial.SerialException("device disconnected")  # port disappears
        return None                                    # nobody answers

    port = ScriptedPort(respond)
    link = SerialLink("/dev/ttyFAKE", 1_000_000, open_port=port.open_port)
    ...                                                # then check port.written, port.read_timeouts
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import serial

__all__ = ["Respond", "ScriptedPort"]

Respond = Callable[[bytes], bytes | Exception | None]


class ScriptedPort:
    """A fake serial port whose replies come from `respond`. See the module docstring."""

    def __init__(self, respond: Respond | None = None, *, timeout: float | None = None) -> None:
        self.respond: Respond = respond if respond is not None else (lambda packet: None)
        self.timeout = timeout
        self.write_timeout: float | None = None
        self.is_open = True
        self.written: list[bytes] = []  # every packet written, in order
        self.read_timeouts: list[float | None] = []  # self.timeout at each read() call
        self.input_resets = 0  # calls of reset_input_buffer()
        self.open_kwargs: dict[str, Any] = {}  # what open_port() was called with
        self._input = bytearray()
        self._error: Exception | None = None

    def open_port(self, url: str, **kwargs: Any) -> ScriptedPort:
        """Pass as SerialLink's `open_port`: records the open arguments and returns this port."""
        self.open_kwargs = {"url": url, **kwargs}
        self.timeout = kwargs.get("timeout", self.timeout)
        self.write_timeout = kwargs.get("write_timeout", self.write_timeout)
        self.is_open = True
        return self

    # -- scripting helpers ----------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Queue input that no write asked for (stale bytes, line noise)."""
        self._input += data

    def fail(self, error: Exception) -> None:
        """Lose the port now: every later read, write and reset raises `error`."""
        self._error = error

    @property
    def pending(self) -> bytes:
        """Input queued and not read yet."""
        return bytes(self._input)

    # -- the pyserial subset --------------------------------------------------------------------

    def write(self, data: bytes) -> int:
        self._check()
        packet = bytes(data)
        self.written.append(packet)
        reply = self.respond(packet)
        if isinstance(reply, BaseException):
            self._error = reply
        elif reply:
            self._input += reply
        return len(packet)

    def read(self, size: int = 1) -> bytes:
        self._check()
        self.read_timeouts.append(self.timeout)
        data = bytes(self._input[:size])
        del self._input[:size]
        return data

    def reset_input_buffer(self) -> None:
        self._check()
        self.input_resets += 1
        self._input.clear()

    def close(self) -> None:
        self.is_open = False

    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        if not self.is_open:
            raise serial.PortNotOpenError()
