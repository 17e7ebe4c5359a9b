"""Feetech SCS/STS packet codec: pure functions on bytes, no I/O.

Wire format (Feetech's SCS/STS communication protocol):

    instruction  FF FF | ID | LEN | INST | params... | CHK
    status       FF FF | ID | LEN | ERR  | params... | CHK

LEN = len(params) + 2 (the INST/ERR byte and CHK). CHK is the low byte of the
bitwise NOT of ID + LEN + INST/ERR + every param byte. There is no byte
stuffing, so `FF FF` may occur inside params. Multi-byte register values are
little-endian; some STS fields are sign-magnitude (see encode_sign_magnitude).
Ids are 0..253; 0xFE is the broadcast id (instructions only, never answered).

Bad arguments to the encoders raise ValueError; bad bytes from the wire raise
ProtocolError subclasses (MalformedPacketError, ChecksumError).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from hw_adapters.base import ChecksumError, MalformedPacketError, StatusError

__all__ = [
    "action",
    "BROADCAST_ID",
    "checksum",
    "decode_instruction",
    "decode_sign_magnitude",
    "decode_status",
    "encode_instruction",
    "encode_sign_magnitude",
    "encode_status",
    "EMULATOR_REFUSED",
    "HEADER",
    "Instruction",
    "MAX_ID",
    "MAX_LENGTH",
    "MAX_PARAMS",
    "Packet",
    "PacketParser",
    "parse_read",
    "parse_sync_read",
    "parse_sync_write",
    "parse_write",
    "ping",
    "raise_for_status",
    "read",
    "reg_write",
    "status_error",
    "StatusBit",
    "sync_read",
    "sync_write",
    "write",
]

HEADER = b"\xff\xff"
BROADCAST_ID = 0xFE
MAX_ID = 253
MAX_LENGTH = 250  # largest LEN byte accepted; a larger one is garbage (LEN counts params + 2)
MAX_PARAMS = MAX_LENGTH - 2


class Instruction(enum.IntEnum):
    PING = 0x01
    READ = 0x02
    WRITE = 0x03
    REG_WRITE = 0x04
    ACTION = 0x05
    RESET = 0x06  # factory reset; present on some firmware only
    SYNC_READ = 0x82
    SYNC_WRITE = 0x83


class StatusBit(enum.IntFlag):
    """Bits of the STS status packet's ERR byte (bits 4, 6 and 7 are not documented).

    The ERR byte is the servo's Status register (65): alarms only. Feetech documents no bit
    for a refused instruction; see EMULATOR_REFUSED.
    """

    INPUT_VOLTAGE = 0x01
    ANGLE_SENSOR = 0x02
    OVERHEAT = 0x04
    OVER_CURRENT = 0x08  # "over-electric" in vendor wording: over-current / electrical fault
    OVERLOAD = 0x20


EMULATOR_REFUSED = 0x40
"""Bit 6, which Feetech leaves unused: the twin's emulator sets it (with OVER_CURRENT, the bit
Dynamixel Protocol 1.0, which this packet format follows, calls "range error") in the status of
an instruction it refuses. A real STS servo never sets it."""


@dataclass(frozen=True)
class Packet:
    """One decoded packet. An instruction has `error` None; a status has `instruction` None."""

    id: int
    instruction: int | None
    params: bytes = b""
    error: int | None = None


def checksum(body: bytes | bytearray) -> int:
    """Checksum of ID, LEN, INST/ERR and params (everything between the header and CHK)."""
    return ~sum(body) & 0xFF


def _check_byte(name: str, value: int, lo: int = 0, hi: int = 0xFF) -> None:
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be {lo}..{hi}, got {value}")


def _check_span(address: int, length: int) -> None:
    _check_byte("address", address)
    _check_byte("length", length, 1)


def _encode(ident: int, code: int, params: bytes) -> bytes:
    params = bytes(params)
    if len(params) > MAX_PARAMS:
        raise ValueError(f"{len(params)} param bytes exceed the {MAX_PARAMS}-byte maximum")
    body = bytes((ident, len(params) + 2, code)) + params
    return HEADER + body + bytes((checksum(body),))


def encode_instruction(id: int, instruction: int, params: bytes = b"") -> bytes:
    """A full instruction packet to `id` (0..253, or BROADCAST_ID)."""
    if id != BROADCAST_ID:
        _check_byte("id", id, 0, MAX_ID)
    _check_byte("instruction", instruction)
    return _encode(id, instruction, params)


def encode_status(id: int, error: int, params: bytes = b"") -> bytes:
    """A full status packet from servo `id` (0..253) with ERR byte `error`."""
    _check_byte("id", id, 0, MAX_ID)
    _check_byte("error", error)
    return _encode(id, error, params)


def _plausible(kind: str, ident: int, length: int) -> bool:
    id_ok = ident <= MAX_ID or (kind == "instruction" and ident == BROADCAST_ID)
    return id_ok and 2 <= length <= MAX_LENGTH


def _packet(kind: str, body: bytes | bytearray) -> Packet:
    """Packet from the bytes between header and CHK (ID, LEN, INST/ERR, params)."""
    ident, code, params = body[0], body[2], bytes(body[3:])
    if kind == "status":
        return Packet(ident, None, params, code)
    try:
        instruction: int = Instruction(code)
    except ValueError:
        instruction = code
    return Packet(ident, instruction, params, None)


def _decode(data: bytes, kind: str) -> Packet:
    data = bytes(data)
    if len(data) < 6:
        raise MalformedPacketError(f"{kind} packet of {len(data)} bytes is shorter than 6: {data.hex(' ')}")
    if data[:2] != HEADER:
        raise MalformedPacketError(f"{kind} packet starts {data[:2].hex(' ')}, not ff ff")
    ident, length = data[2], data[3]
    if not _plausible(kind, ident, length):
        raise MalformedPacketError(f"{kind} packet has impossible id {ident} or length {length}")
    if len(data) != length + 4:
        what = "truncated" if len(data) < length + 4 else "followed by trailing bytes"
        raise MalformedPacketError(f"{kind} packet with LEN {length} needs {length + 4} bytes, {what}")
    expected, got = checksum(data[2:-1]), data[-1]
    if expected != got:
        raise ChecksumError(f"{kind} packet, id {ident}: checksum 0x{got:02X}, expected 0x{expected:02X}")
    return _packet(kind, data[2:-1])


def decode_instruction(data: bytes) -> Packet:
    """Exactly one instruction packet. MalformedPacketError / ChecksumError otherwise."""
    return _decode(data, "instruction")


def decode_status(data: bytes) -> Packet:
    """Exactly one status packet. MalformedPacketError / ChecksumError otherwise."""
    return _decode(data, "status")


# --- builders (host side) -------------------------------------------------------------------------


def ping(id: int) -> bytes:
    return encode_instruction(id, Instruction.PING)


def read(id: int, address: int, length: int) -> bytes:
    """Read `length` bytes (1..255) starting at control-table `address`."""
    _check_span(address, length)
    return encode_instruction(id, Instruction.READ, bytes((address, length)))


def _write(instruction: Instruction, id: int, address: int, data: bytes) -> bytes:
    _check_byte("address", address)
    if not data:
        raise ValueError(f"{instruction.name} needs at least one data byte")
    return encode_instruction(id, instruction, bytes((address,)) + bytes(data))


def write(id: int, address: int, data: bytes) -> bytes:
    """Write `data` (register bytes, multi-byte values little-endian) at `address`; applies at once."""
    return _write(Instruction.WRITE, id, address, data)


def reg_write(id: int, address: int, data: bytes) -> bytes:
    """Like write, but the servo holds the data until ACTION."""
    return _write(Instruction.REG_WRITE, id, address, data)


def action(id: int = BROADCAST_ID) -> bytes:
    return encode_instruction(id, Instruction.ACTION)


def sync_read(address: int, length: int, ids: Iterable[int]) -> bytes:
    """Broadcast SYNC_READ; params: address, length, ids... Each servo answers with its own status."""
    _check_span(address, length)
    ids = list(ids)
    if not ids or len(set(ids)) != len(ids):
        raise ValueError(f"sync_read needs distinct ids, got {ids}")
    for ident in ids:
        _check_byte("id", ident, 0, MAX_ID)
    return encode_instruction(BROADCAST_ID, Instruction.SYNC_READ, bytes((address, length, *ids)))


def sync_write(address: int, length: int, data_by_id: Mapping[int, bytes]) -> bytes:
    """Broadcast SYNC_WRITE; params: address, length, then per id: id + `length` data bytes."""
    _check_span(address, length)
    if not data_by_id:
        raise ValueError("sync_write needs at least one id")
    params = bytearray((address, length))
    for ident, data in data_by_id.items():
        _check_byte("id", ident, 0, MAX_ID)
        if len(data) != length:
            raise ValueError(f"sync_write data for id {ident} is {len(data)} bytes, not {length}")
        params.append(ident)
        params += data
    return encode_instruction(BROADCAST_ID, Instruction.SYNC_WRITE, bytes(params))


# --- param parsers (device side) ------------------------------------------------------------------


def parse_read(params: bytes) -> tuple[int, int]:
    """READ params -> (address, length)."""
    if len(params) != 2 or params[1] == 0:
        raise MalformedPacketError(
            f"READ params must be address and length >= 1, got {bytes(params).hex(' ')}"
        )
    return params[0], params[1]


def parse_write(params: bytes) -> tuple[int, bytes]:
    """WRITE / REG_WRITE params -> (address, data)."""
    if len(params) < 2:
        raise MalformedPacketError(f"WRITE params need an address and data, got {bytes(params).hex(' ')}")
    return params[0], bytes(params[1:])


def parse_sync_read(params: bytes) -> tuple[int, int, list[int]]:
    """SYNC_READ params -> (address, length, ids)."""
    if len(params) < 3 or params[1] == 0:
        raise MalformedPacketError(
            f"SYNC_READ params need address, length >= 1 and ids, got {len(params)} bytes"
        )
    return params[0], params[1], list(params[2:])


def parse_sync_write(params: bytes) -> tuple[int, int, dict[int, bytes]]:
    """SYNC_WRITE params -> (address, length, {id: data}); each data is `length` bytes."""
    if len(params) < 2 or params[1] == 0:
        raise MalformedPacketError(f"SYNC_WRITE params need address and length >= 1, got {len(params)} bytes")
    address, length = params[0], params[1]
    stride, rest = length + 1, params[2:]
    if not rest or len(rest) % stride:
        raise MalformedPacketError(f"SYNC_WRITE has {len(rest)} data bytes, not a multiple of {stride}")
    data_by_id: dict[int, bytes] = {}
    for i in range(0, len(rest), stride):
        if rest[i] in data_by_id:
            raise MalformedPacketError(f"SYNC_WRITE names id {rest[i]} twice")
        data_by_id[rest[i]] = bytes(rest[i + 1 : i + stride])
    return address, length, data_by_id


# --- values and status ------------------------------------------------------------------------------


def encode_sign_magnitude(value: int, sign_bit: int, size: int) -> bytes:
    """`size` little-endian bytes: magnitude in the bits below `sign_bit`, that bit set when negative.

    STS speed uses bit 15, homing offset bit 11, present load bit 10. A magnitude above
    2**sign_bit - 1 saturates to it.
    """
    if not 0 <= sign_bit < 8 * size:
        raise ValueError(f"sign bit {sign_bit} does not fit in {size} bytes")
    magnitude = min(abs(value), (1 << sign_bit) - 1)
    raw = magnitude | (1 << sign_bit) if value < 0 and magnitude else magnitude
    return raw.to_bytes(size, "little")


def decode_sign_magnitude(raw: bytes, sign_bit: int) -> int:
    """Inverse of encode_sign_magnitude (little-endian); bits above `sign_bit` are ignored."""
    if not 0 <= sign_bit < 8 * len(raw):
        raise ValueError(f"sign bit {sign_bit} does not fit in {len(raw)} bytes")
    value = int.from_bytes(raw, "little")
    magnitude = value & ((1 << sign_bit) - 1)
    return -magnitude if value >> sign_bit & 1 else magnitude


def status_error(error: int) -> list[str]:
    """Names of the set bits of a status ERR byte, lowest bit first."""
    # Iterating a flag class yields its named members only, so `name` is never None here.
    known = {int(flag): flag.name.lower().replace("_", " ") for flag in StatusBit if flag.name is not None}
    known[EMULATOR_REFUSED] = "refused (twin emulator)"
    return [known.get(1 << bit, f"unknown bit {bit}") for bit in range(8) if error >> bit & 1]


def raise_for_status(packet: Packet) -> None:
    """StatusError(servo_id, code, message) when the status packet has any error bit set."""
    if packet.error is None:
        raise ValueError("raise_for_status needs a status packet")
    if packet.error:
        names = ", ".join(status_error(packet.error))
        raise StatusError(packet.id, packet.error, f"status error 0x{packet.error:02X} ({names})")


class PacketParser:
    """Streaming parser for one direction of a serial line; never raises on bytes.

    `feed` returns every complete packet found so far. Bytes before a header, headers with an
    impossible id/LEN (so `FF FF FF 01` synchronises on the last two FFs) and packets with a bad
    checksum are dropped; after a bad checksum the scan restarts one byte past that header, so a
    packet hidden behind a false header is still found. A plausible header waits for the bytes
    its LEN claims (at most MAX_LENGTH + 4, so the buffer stays bounded) only while nothing
    contradicts it: as soon as a complete packet with a valid checksum starts inside the bytes
    it would span, the header is taken for noise and the scan resyncs on the next one. Without
    byte stuffing a packet may hold such a packet in its params, so a genuine packet that
    arrives in pieces and carries one is lost; one that arrives whole never is. Call reset()
    after a timeout.
    """

    def __init__(self, kind: Literal["instruction", "status"]) -> None:
        if kind not in ("instruction", "status"):
            raise ValueError(f"kind must be 'instruction' or 'status', got {kind!r}")
        self.kind = kind
        self._buf = bytearray()
        self.packets = 0  # packets returned
        self.checksum_errors = 0  # candidate packets whose checksum failed
        self.bytes_dropped = 0  # bytes discarded as garbage (includes reset())

    @property
    def pending(self) -> int:
        """Bytes held back as the start of a packet not complete yet."""
        return len(self._buf)

    def reset(self) -> None:
        self.bytes_dropped += len(self._buf)
        self._buf.clear()

    def feed(self, data: bytes) -> list[Packet]:
        buf = self._buf
        buf += data
        found: list[Packet] = []
        pos = 0
        while True:
            start = buf.find(HEADER, pos)
            if start < 0:  # keep a trailing FF: it may be the first header byte
                start = max(pos, len(buf) - 1) if buf.endswith(b"\xff") else len(buf)
                self.bytes_dropped += start - pos
                pos = start
                break
            self.bytes_dropped += start - pos
            pos = start
            if len(buf) - pos < 4:
                break
            if not _plausible(self.kind, buf[pos + 2], buf[pos + 3]):
                self.bytes_dropped += 1
                pos += 1
                continue
            end = pos + buf[pos + 3] + 4
            if len(buf) < end:
                if self._holds_packet(pos + 2):  # a false header: resync on what follows
                    self.bytes_dropped += 1
                    pos += 1
                    continue
                break
            if checksum(buf[pos + 2 : end - 1]) != buf[end - 1]:
                self.checksum_errors += 1
                self.bytes_dropped += 1
                pos += 1
                continue
            found.append(_packet(self.kind, buf[pos + 2 : end - 1]))
            self.packets += 1
            pos = end
        del buf[:pos]
        return found

    def _holds_packet(self, start: int) -> bool:
        """Whether a complete packet with a valid checksum starts in the buffer at or after `start`."""
        buf = self._buf
        at = buf.find(HEADER, start)
        while 0 <= at <= len(buf) - 6:
            end = at + buf[at + 3] + 4
            if (
                _plausible(self.kind, buf[at + 2], buf[at + 3])
                and end <= len(buf)
                and checksum(buf[at + 2 : end - 1]) == buf[end - 1]
            ):
                return True
            at = buf.find(HEADER, at + 1)
        return False
