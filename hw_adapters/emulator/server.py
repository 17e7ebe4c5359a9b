"""Serve emulated servos on a pseudo-terminal, in real time.

The plant runs on the wall clock (time.monotonic). The loop wakes at least
every `tick_s` to keep it within a few milliseconds of the wall clock. An
instruction is answered first and the plant caught up after: before answering
the plant advances at most `presync_s` towards now, so a request never waits
for a long catch-up (after a stall the state it reads is that much older).
Watchdogs are fed with the time each instruction arrived all the same.

With `wire_timing`, replies leave when they would on a real bus: the line is
busy with each request's bytes (10 bits each at the baud rate) from when it
arrives or the line frees up, then each servo's return delay and its reply
(the blocks of a combined reply follow each other without one). The packets
answering one instruction leave together, when the last of them would have
been through: no byte arrives before a real bus would deliver it, and the
host, which waits for them all, is done when it would be. The last
`spin_s` before that moment is waited out awake, as a timer wake-up comes
tens of microseconds late.

`prompt` asks the kernel for prompt wake-ups of the serving thread (a short
scheduler slice and a tight timer slack, hw_adapters.realtime; no privileges
needed): without them a busy machine delays replies by milliseconds.
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hw_adapters.base import ConfigError
from hw_adapters.emulator.responder import BusDevices, ProtocolResponder, Reply
from hw_adapters.realtime import request_short_slice, tighten_timer_slack
from servo_core.plugins import import_object
from servo_core.protocol import BITS_PER_BYTE, PROTOCOLS, Protocol, protocol_named
from sim_models.plant import Plant

__all__ = ["EmulatorServer", "RESPONDERS", "ServerStats"]

# The device side of each protocol, imported when a server speaks it.
RESPONDERS: dict[str, str] = {
    "dynamixel": "hw_adapters.emulator.dynamixel:DynamixelResponder",
    "feetech": "hw_adapters.emulator.feetech:FeetechResponder",
}


@dataclass
class ServerStats:
    bytes_in: int = 0
    bytes_out: int = 0
    max_lag_s: float = 0.0  # how far the plant fell behind the wall clock before a catch-up
    short_slice: bool = False  # whether the kernel took the serving thread's slice request
    timer_slack: bool = False  # ... and its timer slack


@dataclass
class _Pending:
    due: float
    data: bytes


@dataclass
class EmulatorServer:
    """Emulated servos of `plant` answering `protocol` instructions on a pseudo-terminal.

    `protocol` is a Protocol object or its name ("dynamixel", "feetech").
    """

    plant: Plant
    protocol: Protocol | str
    baud: int = 1_000_000
    wire_timing: bool = False
    tick_s: float = 0.002
    idle_reset_s: float = 0.005  # a line quiet this long drops a half-received packet
    presync_s: float = 0.002  # the most plant time run before answering an instruction
    spin_s: float = 0.0002  # with wire timing: how long before a reply is due to stop sleeping
    prompt: bool = True
    stats: ServerStats = field(default_factory=ServerStats)

    def __post_init__(self) -> None:
        if isinstance(self.protocol, str):
            if self.protocol not in RESPONDERS:
                raise ConfigError(
                    f"unknown protocol {self.protocol!r}; valid: {', '.join(sorted(RESPONDERS))}"
                )
            self.protocol = protocol_named(self.protocol)
        if self.protocol.name not in RESPONDERS or PROTOCOLS.get(self.protocol.name) is not self.protocol:
            raise ConfigError(
                f"no emulator for protocol {self.protocol!r}; valid: {', '.join(sorted(RESPONDERS))}"
            )
        if self.baud <= 0:
            raise ConfigError(f"baud must be positive, got {self.baud}")
        servos = {s.servo_id: s for s in self.plant.servos}
        name = self.protocol.name
        wrong = [i for i, s in servos.items() if s.spec.bus_protocol is not self.protocol]
        if wrong:
            raise ConfigError(f"servos {wrong} do not speak {name}; the scenario's servos must")
        self._t0 = time.monotonic()
        self.devices = BusDevices(servos, self._presync, self.now)
        responder = import_object(RESPONDERS[name], "responder")
        self.responder: ProtocolResponder = responder(self.devices)  # type: ignore[operator]
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        self.device_path = os.ttyname(self._slave)
        self._pending: list[_Pending] = []
        self._soon: collections.deque[Callable[[], None]] = collections.deque()
        # Watchers of a session (twin emulate --out), called on the serving thread: the bytes
        # each read brought (with when they arrived, s), and every turn of the loop (now, s).
        self.on_receive: Callable[[float, bytes], None] | None = None
        self.on_tick: Callable[[float], None] | None = None
        self.watch_error: Exception | None = None  # why the watchers were dropped, if they were
        self._line_free = 0.0  # with wire timing: when the last byte in or out leaves the line
        self._last_rx = 0.0
        self._link: Path | None = None

    # -- clock ---------------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self._t0

    def _sync(self) -> None:
        self._advance(self.now())

    def _presync(self) -> None:
        self._advance(min(self.now(), self.plant.time + self.presync_s))

    def _advance(self, t: float) -> None:
        lag = self.now() - self.plant.time
        if lag > self.stats.max_lag_s:
            self.stats.max_lag_s = lag
        self.plant.advance_to(t)

    # -- link ----------------------------------------------------------------------------
    def link(self, path: str | os.PathLike[str]) -> Path:
        """Make `path` a symbolic link to the pseudo-terminal (replacing an old link, never a file).

        ConfigError naming the path when it cannot be made (no such directory, not writable).
        """
        link = Path(path)
        try:
            if link.is_symlink():
                link.unlink()
            elif link.exists():
                raise ConfigError(f"--link {link}: a file is already there; give a new path")
            link.symlink_to(self.device_path)
        except OSError as exc:
            where = link.parent if not link.parent.is_dir() else link
            reason = exc.strerror or type(exc).__name__
            raise ConfigError(f"--link {link}: cannot make a link there ({where}: {reason})") from None
        self._link = link
        return link

    def close(self) -> None:
        if self._link is not None and self._link.is_symlink():
            self._link.unlink()
        self._link = None
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._master = self._slave = -1

    # -- serving ---------------------------------------------------------------------------
    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the serving thread between two instructions (safe from any thread):
        how another thread changes the servos (a fault) without racing the physics."""
        self._soon.append(fn)

    def serve(self, stop: threading.Event | Callable[[], bool]) -> None:
        """Answer instructions until `stop` is set (an Event) or returns True."""
        should_stop = stop.is_set if isinstance(stop, threading.Event) else stop
        if self.prompt:  # for the thread that serves, whichever it is
            self.stats.short_slice = request_short_slice()
            self.stats.timer_slack = tighten_timer_slack()
        while not should_stop():
            timeout = self.tick_s
            if self._pending:
                due = self._pending[0].due
                if due - self.now() <= self.spin_s:
                    while self.now() < due:
                        pass
                    self._send_due()
                    continue
                timeout = min(timeout, due - self.now() - self.spin_s)
            readable, _, _ = select.select([self._master], [], [], max(0.0, timeout))
            if readable:
                self._receive()
            elif self.now() - self._last_rx > self.idle_reset_s:
                # A quiet line ends any half-received packet, as a servo's receive timeout does.
                self.responder.parser.reset()
            self._send_due()
            self._sync()
            while self._soon:
                self._soon.popleft()()
            if self.on_tick is not None:
                self._watch(self.on_tick, self.now())

    def _receive(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except OSError:  # nobody has the other end open right now
            return
        arrived = self._last_rx = self.now()
        self.stats.bytes_in += len(data)
        if self.wire_timing:
            # The pty delivered at once what a real line carries 10 bits at a time.
            self._line_free = max(arrived, self._line_free) + len(data) * BITS_PER_BYTE / self.baud
        replies = self.responder.feed(data)
        if replies:
            self._schedule(replies)
        if self.on_receive is not None:
            self._watch(self.on_receive, arrived, data)

    def _watch(self, hook: Callable[..., None], *args: object) -> None:
        """A watcher that fails (a full disk under --out) stops watching; the servos go on."""
        try:
            hook(*args)
        except Exception as exc:
            self.on_receive = self.on_tick = None
            self.watch_error = exc

    def _schedule(self, replies: list[Reply]) -> None:
        if not self.wire_timing:
            self._write(b"".join(r.packet for r in replies))
            return
        byte_s = BITS_PER_BYTE / self.baud
        t = self._line_free
        for reply in replies:
            if not reply.follows:
                t += reply.servo.return_delay_s
            t += len(reply.packet) * byte_s
        self._line_free = t
        self._pending.append(_Pending(t, b"".join(r.packet for r in replies)))
        self._pending.sort(key=lambda p: p.due)

    def _send_due(self) -> None:
        now = self.now()
        while self._pending and self._pending[0].due <= now:
            self._write(self._pending.pop(0).data)

    def _write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(self._master, data)
            self.stats.bytes_out += len(data)
