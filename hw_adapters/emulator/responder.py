"""What the emulated servos on one bus have in common, whatever the protocol."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hw_adapters.base import ProtocolError
from sim_models.servo.device import RegisterError, VirtualServo

__all__ = ["BusDevices", "ProtocolResponder", "Reply", "ResponderStats"]


@dataclass(frozen=True)
class Reply:
    """A status packet and the servo that sends it (whose return delay it waits).

    `follows`: the bytes continue the packet before them (a servo's block in a combined
    status) and leave right after it, with no return delay of their own.
    """

    servo: VirtualServo
    packet: bytes
    follows: bool = False


@dataclass
class ResponderStats:
    instructions: int = 0
    replies: int = 0
    refused: int = 0  # instructions answered with an error code
    ignored: int = 0  # for absent ids, or status packets seen on the line


@dataclass
class BusDevices:
    """The servos on the line, by their current id; `sync` brings the physics up to date before an
    instruction is answered, `now` is when it arrived (s, on the servos' clock; None: their own time)."""

    units: Mapping[int, VirtualServo]
    sync: Callable[[], None] = lambda: None
    now: Callable[[], float] | None = None
    stats: ResponderStats = field(default_factory=ResponderStats)
    registered: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # REG_WRITE per id

    def __post_init__(self) -> None:
        self._all = list(self.units.values())
        self.servos: dict[int, VirtualServo] = {}
        self._index()

    def _index(self) -> None:
        # A servo answers to the id in its ID register, which a write may change.
        self.servos = {s.servo_id: s for s in self._all}

    def ordered(self) -> list[VirtualServo]:
        return [self.servos[i] for i in sorted(self.servos)]

    def read(self, servo: VirtualServo, address: int, length: int) -> bytes | RegisterError:
        try:
            return servo.read(address, length)
        except RegisterError as exc:
            return exc

    def write(self, servo: VirtualServo, address: int, data: bytes) -> RegisterError | None:
        try:
            servo.write(address, data)
        except RegisterError as exc:
            return exc
        if address <= servo.table["id"].address < address + len(data):
            self._index()
        return None

    def action(self, servo_id: int | None) -> None:
        """Apply registered writes: of one servo, or of all (broadcast ACTION)."""
        ids = list(self.registered) if servo_id is None else [servo_id]
        for i in ids:
            pending = self.registered.pop(i, None)
            if pending is not None and i in self.servos:
                self.write(self.servos[i], *pending)


class ProtocolResponder:
    """The servos' side of one protocol: parse what arrives, answer each instruction.

    Subclasses set the protocol's broadcast id and the error code for parameters of the
    wrong length, and answer unicast and broadcast instructions.
    """

    broadcast_id = 0xFE
    malformed_error = 0

    def __init__(self, devices: BusDevices, parser: Any) -> None:
        self.devices = devices
        self.parser = parser

    def feed(self, data: bytes) -> list[Reply]:
        replies: list[Reply] = []
        for packet in self.parser.feed(data):
            replies.extend(self.handle(packet))
        return replies

    def handle(self, packet: Any) -> list[Reply]:
        dev = self.devices
        if self._not_an_instruction(packet):
            dev.stats.ignored += 1
            return []
        dev.stats.instructions += 1
        dev.sync()
        self._heard(packet.id)
        try:
            if packet.id == self.broadcast_id:
                return self._broadcast(packet)
            servo = dev.servos.get(packet.id)
            if servo is None:
                dev.stats.ignored += 1
                return []
            return self._unicast(servo, packet)
        except ProtocolError:  # parameters of the wrong length for the instruction
            servo = dev.servos.get(packet.id)
            return [self._status(servo, self.malformed_error)] if servo is not None else []

    def _heard(self, servo_id: int) -> None:
        """An instruction reached the servos it is addressed to: it feeds their watchdogs."""
        dev = self.devices
        t = dev.now() if dev.now is not None else None
        if servo_id == self.broadcast_id:
            for servo in dev.servos.values():
                servo.heard(t)
        elif servo_id in dev.servos:
            dev.servos[servo_id].heard(t)

    def _not_an_instruction(self, packet: Any) -> bool:
        return False

    def _unicast(self, servo: VirtualServo, packet: Any) -> list[Reply]:
        raise NotImplementedError

    def _broadcast(self, packet: Any) -> list[Reply]:
        raise NotImplementedError

    def _status(self, servo: VirtualServo, error: int, params: bytes = b"") -> Reply:
        raise NotImplementedError
