"""Dynamixel Protocol 2.0 codec, no I/O: `FF FF FD 00 | ID | LEN_L LEN_H | INST | params | CRC_L CRC_H`.

A status packet has INST 0x55, then an ERR byte, then params. LEN counts INST, the stuffed ERR + params
and the 2 CRC bytes. Multi-byte fields (LEN, CRC, addresses, lengths, register data) are little-endian;
addresses and lengths count control-table bytes. Stuffing covers INST, ERR and params (`FF FF FD` is sent
as `FF FF FD FD`); the CRC covers the stuffed packet from the header to the last param byte.
A Fast Sync Read (0x8A) is answered by one status packet from the broadcast id that every servo
asked adds its block to (see encode_fast_sync_status). Serves the host (instructions out, status in)
and the device emulator (the reverse). Encoders raise
ValueError on arguments no caller should pass; decoders raise ChecksumError / MalformedPacketError.
Source: the ROBOTIS e-Manual, "Dynamixel Protocol 2.0".
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from hw_adapters.base import ChecksumError, MalformedPacketError, ProtocolError, StatusError

__all__ = [
    "action",
    "ALERT",
    "BROADCAST_ID",
    "broadcast_ping",
    "clear",
    "CLEAR_MULTI_TURN",
    "ErrorCode",
    "bulk_read",
    "bulk_write",
    "crc16",
    "decode_packet",
    "encode_fast_sync_status",
    "encode_instruction",
    "encode_status",
    "factory_reset",
    "fast_sync_read",
    "fast_sync_read_reply_size",
    "FastSyncReadParser",
    "HEADER",
    "Instruction",
    "MAX_ID",
    "MAX_LENGTH",
    "Packet",
    "PacketParser",
    "parse_bulk_read",
    "parse_bulk_write",
    "parse_read",
    "parse_sync_read",
    "parse_sync_write",
    "parse_write",
    "PARSER_MAX_LENGTH",
    "ping",
    "raise_for_status",
    "read",
    "reboot",
    "reg_write",
    "status_error",
    "stuff",
    "sync_read",
    "sync_write",
    "unstuff",
    "write",
]

HEADER = b"\xff\xff\xfd\x00"
BROADCAST_ID = 0xFE
MAX_ID = 252  # 0xFD and 0xFF are reserved, 0xFE is broadcast
MAX_LENGTH = 0xFFFF  # the largest LEN field
PARSER_MAX_LENGTH = 4096  # PacketParser's default cap on LEN; larger is taken for noise

_PATTERN = b"\xff\xff\xfd"
_STUFFED = b"\xff\xff\xfd\xfd"
_PREFIX = 7  # header + ID + LEN
_MIN_LENGTH = 3  # INST + CRC
_FAST_BLOCK = 4  # ERR + ID + CRC around each servo's data in a fast sync status
_FACTORY_RESET_MODES = (0x01, 0x02, 0xFF)
_ERROR_MESSAGES: tuple[str, ...] = (
    "no error",
    "result fail",
    "instruction error",
    "CRC error",
    "data range error",
)
_ERROR_MESSAGES += ("data length error", "data limit error", "access error")


class ErrorCode(enum.IntEnum):
    """The error number in a status packet's ERR byte (low 7 bits; bit 7 is the alert)."""

    RESULT_FAIL = 1
    INSTRUCTION_ERROR = 2
    CRC_ERROR = 3
    DATA_RANGE_ERROR = 4
    DATA_LENGTH_ERROR = 5
    DATA_LIMIT_ERROR = 6
    ACCESS_ERROR = 7


ALERT = 0x80
# CLEAR's parameters that reset the multi-turn count (e-Manual, Protocol 2.0, Clear 0x10).
CLEAR_MULTI_TURN = bytes((0x01, 0x44, 0x58, 0x4C, 0x22))


class Instruction(enum.IntEnum):
    PING = 0x01
    READ = 0x02
    WRITE = 0x03
    REG_WRITE = 0x04
    ACTION = 0x05
    FACTORY_RESET = 0x06
    REBOOT = 0x08
    CLEAR = 0x10
    STATUS = 0x55
    SYNC_READ = 0x82
    SYNC_WRITE = 0x83
    FAST_SYNC_READ = 0x8A
    BULK_READ = 0x92
    BULK_WRITE = 0x93


_KNOWN = frozenset(Instruction)


@dataclass(frozen=True, slots=True)
class Packet:
    """One unstuffed packet. `error`: the ERR byte of a STATUS packet, else None; params exclude it."""

    id: int
    instruction: int
    params: bytes
    error: int | None = None


# ----------------------------------------------------------------------------- CRC and stuffing


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = (crc << 1) ^ 0x8005 if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes, crc: int = 0) -> int:
    """CRC-16 of `data`: polynomial 0x8005, initial value 0, not reflected, no final xor.

    The packet carries it low byte first. `crc` continues a CRC over bytes that came before.
    """
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ byte]
    return crc


def stuff(payload: bytes) -> bytes:
    """INST/ERR + params as sent: every `FF FF FD` gets an extra `FD`.

    The pattern cannot overlap itself, so one left-to-right replace is exact.
    """
    return bytes(payload).replace(_PATTERN, _STUFFED)


def unstuff(payload: bytes) -> bytes:
    """Undo `stuff`. MalformedPacketError when an `FF FF FD` is not followed by the stuffed `FD`."""
    payload = bytes(payload)
    plain = payload.replace(_STUFFED, _PATTERN)
    if stuff(plain) != payload:
        raise MalformedPacketError(f"byte stuffing violated: unstuffed FF FF FD in {payload.hex(' ')}")
    return plain


# ----------------------------------------------------------------------------- encoding


def _check_id(servo_id: int, *, broadcast: bool = True) -> None:
    if not (0 <= servo_id <= MAX_ID or (broadcast and servo_id == BROADCAST_ID)):
        extra = " or 254 (broadcast)" if broadcast else ""
        raise ValueError(f"servo id must be 0..{MAX_ID}{extra}, got {servo_id}")


def _uint(value: int, name: str, size: int = 2, minimum: int = 0) -> bytes:
    """`value` as `size` little-endian bytes; ValueError when out of range."""
    if not minimum <= value < 1 << (8 * size):
        raise ValueError(f"{name} must be {minimum}..{(1 << (8 * size)) - 1}, got {value}")
    return value.to_bytes(size, "little")


def _frame(servo_id: int, body: bytes) -> bytes:
    stuffed = stuff(body)
    length = len(stuffed) + 2
    if length > MAX_LENGTH:
        raise ValueError(f"packet too long: LEN would be {length} > {MAX_LENGTH}")
    head = HEADER + bytes((servo_id,)) + length.to_bytes(2, "little") + stuffed
    return head + crc16(head).to_bytes(2, "little")


def encode_instruction(servo_id: int, instruction: int, params: bytes = b"") -> bytes:
    """A full instruction packet to `servo_id` (0..252, or 254 = broadcast). Use encode_status for 0x55."""
    _check_id(servo_id)
    if instruction == Instruction.STATUS:
        raise ValueError("instruction 0x55 is a status packet: use encode_status")
    return _frame(servo_id, _uint(instruction, "instruction", 1) + bytes(params))


def encode_status(servo_id: int, error: int, params: bytes = b"") -> bytes:
    """A full status packet from `servo_id` with ERR byte `error` (bit 7 alert, low 7 bits code).

    Id 254 is allowed: the combined answer to a Fast Sync Read comes from the broadcast id.
    """
    _check_id(servo_id)
    return _frame(servo_id, bytes((Instruction.STATUS,)) + _uint(error, "error", 1) + bytes(params))


def _ids(ids: Iterable[int]) -> bytes:
    ids = list(ids)
    if not ids or len(set(ids)) != len(ids):
        raise ValueError(f"ids must be distinct and not empty, got {ids}")
    for servo_id in ids:
        _check_id(servo_id, broadcast=False)
    return bytes(ids)


def ping(servo_id: int) -> bytes:
    return encode_instruction(servo_id, Instruction.PING)


def broadcast_ping() -> bytes:
    return ping(BROADCAST_ID)


def read(servo_id: int, address: int, length: int) -> bytes:
    """READ `length` bytes from control-table byte `address`: params address LE16, length LE16."""
    params = _uint(address, "address") + _uint(length, "length", minimum=1)
    return encode_instruction(servo_id, Instruction.READ, params)


def write(servo_id: int, address: int, data: bytes) -> bytes:
    """WRITE raw register bytes `data` at `address`: params address LE16, data."""
    return encode_instruction(servo_id, Instruction.WRITE, _address_data(address, data))


def reg_write(servo_id: int, address: int, data: bytes) -> bytes:
    """REG_WRITE: like write, applied on ACTION."""
    return encode_instruction(servo_id, Instruction.REG_WRITE, _address_data(address, data))


def _address_data(address: int, data: bytes) -> bytes:
    if not data:
        raise ValueError("write data must not be empty")
    return _uint(address, "address") + bytes(data)


def action(servo_id: int) -> bytes:
    return encode_instruction(servo_id, Instruction.ACTION)


def reboot(servo_id: int) -> bytes:
    return encode_instruction(servo_id, Instruction.REBOOT)


def clear(servo_id: int) -> bytes:
    """CLEAR 0x01: reset Present Position to within one turn (X series firmware 42 and later)."""
    return encode_instruction(servo_id, Instruction.CLEAR, CLEAR_MULTI_TURN)


def factory_reset(servo_id: int, mode: int = 0xFF) -> bytes:
    """FACTORY_RESET; mode 0xFF resets all, 0x01 all but ID, 0x02 all but ID and baud rate."""
    if mode not in _FACTORY_RESET_MODES:
        raise ValueError(f"factory reset mode must be 0x01, 0x02 or 0xFF, got {mode:#x}")
    return encode_instruction(servo_id, Instruction.FACTORY_RESET, bytes((mode,)))


def sync_read(address: int, length: int, ids: Iterable[int]) -> bytes:
    """Broadcast SYNC_READ: params address LE16, length LE16, id1, id2, ..."""
    return encode_instruction(BROADCAST_ID, Instruction.SYNC_READ, _sync_read_params(address, length, ids))


def fast_sync_read(address: int, length: int, ids: Iterable[int]) -> bytes:
    """Broadcast FAST_SYNC_READ: params as sync_read."""
    return encode_instruction(
        BROADCAST_ID, Instruction.FAST_SYNC_READ, _sync_read_params(address, length, ids)
    )


def fast_sync_read_reply_size(n_ids: int, length: int) -> int:
    """Bytes of the status answering a Fast Sync Read of `length` bytes from `n_ids` servos."""
    return _PREFIX + 1 + n_ids * (_FAST_BLOCK + length)


def encode_fast_sync_status(blocks: Sequence[tuple[int, int, bytes]], n_ids: int) -> list[bytes]:
    """The answer to a Fast Sync Read of `n_ids` servos, as the chunks each servo sends.

    `blocks`: (id, error, data) of the servos that answer, in the order asked; every data has
    the same length. One status packet from the broadcast id: `FF FF FD 00 | FE | LEN | 55`,
    then per servo `ERR | ID | data | CRC`, each CRC over every byte from the header up to it,
    so the last one is the packet's CRC. LEN counts all `n_ids` blocks: a chain cut short
    (a servo missing) keeps the LEN of the whole. The blocks are not byte-stuffed, as the
    Dynamixel SDK reads them. The first chunk carries the header and the first block.
    """
    if not blocks or len(blocks) > n_ids:
        raise ValueError(f"a fast sync status has 1..{n_ids} blocks, got {len(blocks)}")
    length = len(blocks[0][2])
    chunks, crc = [], 0
    head = HEADER + bytes((BROADCAST_ID,)) + _uint(1 + n_ids * (_FAST_BLOCK + length), "LEN")
    head += bytes((Instruction.STATUS,))
    for k, (servo_id, error, data) in enumerate(blocks):
        _check_id(servo_id, broadcast=False)
        if len(data) != length:
            raise ValueError(f"servo {servo_id}: {len(data)} data bytes, the others have {length}")
        block = (head if k == 0 else b"") + _uint(error, "error", 1) + bytes((servo_id,)) + bytes(data)
        crc = crc16(block, crc)
        chunks.append(block + crc.to_bytes(2, "little"))
        crc = crc16(chunks[-1][-2:], crc)
    return chunks


def _sync_read_params(address: int, length: int, ids: Iterable[int]) -> bytes:
    return _uint(address, "address") + _uint(length, "length", minimum=1) + _ids(ids)


def sync_write(address: int, length: int, data_by_id: Mapping[int, bytes]) -> bytes:
    """Broadcast SYNC_WRITE: params address LE16, length LE16, then per servo: id, `length` data bytes."""
    _ids(data_by_id)
    params = bytearray(_uint(address, "address") + _uint(length, "length", minimum=1))
    for servo_id, data in data_by_id.items():
        if len(data) != length:
            raise ValueError(f"sync write to id {servo_id}: {len(data)} data bytes, expected {length}")
        params += bytes((servo_id,)) + bytes(data)
    return encode_instruction(BROADCAST_ID, Instruction.SYNC_WRITE, bytes(params))


def bulk_read(items: Sequence[tuple[int, int, int]]) -> bytes:
    """Broadcast BULK_READ of (id, address, length) items: per item id, address LE16, length LE16."""
    _ids(servo_id for servo_id, _, _ in items)
    params = b"".join(
        bytes((servo_id,)) + _uint(address, "address") + _uint(length, "length", minimum=1)
        for servo_id, address, length in items
    )
    return encode_instruction(BROADCAST_ID, Instruction.BULK_READ, params)


def bulk_write(items: Sequence[tuple[int, int, bytes]]) -> bytes:
    """Broadcast BULK_WRITE of (id, address, data) items: per item id, address LE16, length LE16, data."""
    _ids(servo_id for servo_id, _, _ in items)
    params = b"".join(
        bytes((servo_id,)) + _uint(address, "address") + _uint(len(data), "length", minimum=1) + bytes(data)
        for servo_id, address, data in items
    )
    return encode_instruction(BROADCAST_ID, Instruction.BULK_WRITE, params)


# ----------------------------------------------------------------------------- params (device side)


def _le16(params: bytes | bytearray, at: int) -> int:
    return params[at] | params[at + 1] << 8


def _need(ok: bool, what: str, params: bytes) -> None:
    if not ok:
        raise MalformedPacketError(f"{what}: bad params ({len(params)} bytes: {bytes(params).hex(' ')})")


def _check_listed_ids(ids: Sequence[int], what: str, params: bytes) -> None:
    _need(len(set(ids)) == len(ids) and all(i <= MAX_ID for i in ids), what, params)


def parse_read(params: bytes) -> tuple[int, int]:
    """READ params -> (address, length)."""
    _need(len(params) == 4, "READ", params)
    return _le16(params, 0), _le16(params, 2)


def parse_write(params: bytes) -> tuple[int, bytes]:
    """WRITE / REG_WRITE params -> (address, data); at least one data byte."""
    _need(len(params) >= 3, "WRITE", params)
    return _le16(params, 0), bytes(params[2:])


def parse_sync_read(params: bytes) -> tuple[int, int, list[int]]:
    """SYNC_READ / FAST_SYNC_READ params -> (address, length, ids)."""
    _need(len(params) >= 5, "SYNC_READ", params)
    ids = list(params[4:])
    _check_listed_ids(ids, "SYNC_READ", params)
    return _le16(params, 0), _le16(params, 2), ids


def parse_sync_write(params: bytes) -> tuple[int, int, dict[int, bytes]]:
    """SYNC_WRITE params -> (address, length, {id: data})."""
    _need(len(params) >= 6, "SYNC_WRITE", params)
    length = _le16(params, 2)
    step = length + 1
    _need(length > 0 and (len(params) - 4) % step == 0, "SYNC_WRITE", params)
    chunks = [params[at : at + step] for at in range(4, len(params), step)]
    _check_listed_ids([c[0] for c in chunks], "SYNC_WRITE", params)
    return _le16(params, 0), length, {c[0]: bytes(c[1:]) for c in chunks}


def parse_bulk_read(params: bytes) -> list[tuple[int, int, int]]:
    """BULK_READ params -> [(id, address, length)]."""
    _need(len(params) >= 5 and len(params) % 5 == 0, "BULK_READ", params)
    items = [(params[at], _le16(params, at + 1), _le16(params, at + 3)) for at in range(0, len(params), 5)]
    _check_listed_ids([i[0] for i in items], "BULK_READ", params)
    return items


def parse_bulk_write(params: bytes) -> list[tuple[int, int, bytes]]:
    """BULK_WRITE params -> [(id, address, data)]."""
    items, at = [], 0
    _need(len(params) >= 6, "BULK_WRITE", params)
    while at < len(params):
        _need(len(params) - at >= 6, "BULK_WRITE", params)
        length = _le16(params, at + 3)
        end = at + 5 + length
        _need(length > 0 and end <= len(params), "BULK_WRITE", params)
        items.append((params[at], _le16(params, at + 1), bytes(params[at + 5 : end])))
        at = end
    _check_listed_ids([i[0] for i in items], "BULK_WRITE", params)
    return items


# ----------------------------------------------------------------------------- decoding


def _decode_frame(frame: bytes) -> Packet:
    """A frame whose header and LEN are already consistent with its size."""
    expected, got = crc16(frame[:-2]), _le16(frame, len(frame) - 2)
    if expected != got:
        raise ChecksumError(f"CRC mismatch: expected 0x{expected:04X}, got 0x{got:04X} in {frame.hex(' ')}")
    servo_id = frame[4]
    if servo_id > MAX_ID and servo_id != BROADCAST_ID:
        raise MalformedPacketError(f"reserved id {servo_id:#04x}")
    body = unstuff(frame[_PREFIX:-2])
    if body[0] != Instruction.STATUS:
        return Packet(servo_id, Instruction(body[0]) if body[0] in _KNOWN else body[0], body[1:])
    if len(body) < 2:
        raise MalformedPacketError(f"status packet without an error byte: {frame.hex(' ')}")
    return Packet(servo_id, Instruction.STATUS, body[2:], body[1])


def decode_packet(data: bytes) -> Packet:
    """Exactly one packet -> Packet. ChecksumError on a CRC mismatch, MalformedPacketError otherwise."""
    data = bytes(data)
    if not data.startswith(HEADER):
        raise MalformedPacketError(f"no FF FF FD 00 header: {data[:8].hex(' ')}")
    if len(data) < _PREFIX + _MIN_LENGTH:
        raise MalformedPacketError(f"truncated packet ({len(data)} bytes): {data.hex(' ')}")
    length = _le16(data, 5)
    if length < _MIN_LENGTH:
        raise MalformedPacketError(f"LEN {length} < {_MIN_LENGTH}")
    if len(data) != _PREFIX + length:
        kind = "truncated" if len(data) < _PREFIX + length else "trailing bytes after"
        size = _PREFIX + length
        raise MalformedPacketError(f"{kind} packet: LEN {length} means {size} bytes, got {len(data)}")
    return _decode_frame(data)


class PacketParser:
    """Streaming parser for a serial line: `feed` returns the packets completed so far, keeps a partial one.

    Never raises on wire bytes. Garbage, CRC failures and malformed packets are dropped a byte at a time
    up to the next header. A header with a reserved ID or LEN outside 3..`max_length` is noise. A pending
    packet is given up as soon as a header shows where a stuffed packet cannot hold one (before its last
    4 bytes), so noise that looks like a long header never holds back the packet behind it. Between calls
    at most 6 + `max_length` bytes stay buffered. Counters: packets, crc_errors, malformed (good CRC, bad
    content), bytes_dropped. `on_crc_error`, when set, is told the id of every whole packet whose CRC
    does not match (a device answers it with a CRC Error status).
    """

    def __init__(self, max_length: int = PARSER_MAX_LENGTH) -> None:
        if not _MIN_LENGTH < max_length <= 0xFEFF:
            raise ValueError(f"max_length must be 4..65279, got {max_length}")
        self.max_length = max_length
        self._buf = bytearray()
        self.packets = self.crc_errors = self.malformed = self.bytes_dropped = 0
        self.on_crc_error: Callable[[int], None] | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for a packet still incomplete."""
        return len(self._buf)

    @property
    def missing(self) -> int:
        """Bytes still to come for the incomplete packet held, as its length field says (0: unknown).

        Byte stuffing makes a status longer than its parameters suggest: a host that read the
        expected size learns here how many bytes are still on their way.
        """
        buf = self._buf
        if len(buf) < 7 or not buf.startswith(HEADER):
            return 0
        return max(0, 7 + int.from_bytes(buf[5:7], "little") - len(buf))

    def reset(self) -> None:
        """Forget a partial packet (counted as dropped), e.g. after a timeout."""
        self.bytes_dropped += len(self._buf)
        self._buf.clear()

    def feed(self, data: bytes) -> list[Packet]:
        buf = self._buf
        buf += data
        found: list[Packet] = []
        pos = 0
        while True:
            start = buf.find(HEADER, pos)
            if start < 0:
                start = len(buf) - _partial_header(buf, pos)
            self.bytes_dropped += start - pos
            pos = start
            size = self._take(pos, found)
            if size == 0:
                break
            if size < 0:  # no packet here: drop the first byte and look for the next header
                self.bytes_dropped += 1
                size = 1
            pos += size
        del buf[:pos]
        return found

    def _take(self, pos: int, found: list[Packet]) -> int:
        """Size of the packet at pos (appended to found), 0 to wait for bytes, -1 when none starts there."""
        buf = self._buf
        if len(buf) - pos < _PREFIX:
            return 0
        servo_id, length = buf[pos + 4], _le16(buf, pos + 5)
        if (servo_id > MAX_ID and servo_id != BROADCAST_ID) or not _MIN_LENGTH <= length <= self.max_length:
            return -1
        end = pos + _PREFIX + length
        if len(buf) < end:
            return -1 if buf.find(HEADER, pos + 1, end - 1) >= 0 else 0
        try:
            found.append(_decode_frame(bytes(buf[pos:end])))
        except ChecksumError:
            self.crc_errors += 1
            if self.on_crc_error is not None:
                self.on_crc_error(servo_id)
            return -1
        except MalformedPacketError:
            self.malformed += 1
            return -1
        self.packets += 1
        return end - pos


def _partial_header(buf: bytearray, pos: int) -> int:
    """How many bytes at the end of buf[pos:] could start a header."""
    for keep in (3, 2, 1):
        if len(buf) - pos >= keep and buf.endswith(HEADER[:keep]):
            return keep
    return 0


class FastSyncReadParser:
    """The host's parser for the status answering a Fast Sync Read of `length` bytes from `n_ids` servos.

    `feed` returns a STATUS Packet per block (the block's id, error byte and data), in order,
    as soon as the block's CRC checks. Each CRC covers everything before it, so the blocks
    before a missing servo or a corrupt byte still decode; nothing after a bad CRC does.
    Bytes before the header (FE id, LEN for `n_ids` blocks, instruction 0x55) are dropped.
    Counters: packets (blocks), crc_errors, malformed, bytes_dropped; `pending`: bytes held
    that make no complete block yet.
    """

    def __init__(self, length: int, n_ids: int) -> None:
        if length < 1 or n_ids < 1:
            raise ValueError(f"length and n_ids must be >= 1, got {length}, {n_ids}")
        self.length, self.n_ids = length, n_ids
        size = 1 + n_ids * (_FAST_BLOCK + length)
        self._head = HEADER + bytes((BROADCAST_ID,)) + size.to_bytes(2, "little")
        self._buf = bytearray()
        self._found = False  # the header is at _buf[0]
        self._used = 0  # bytes of _buf decoded into blocks
        self._crc = 0  # CRC of _buf[:_used]
        self._stopped = False  # after a bad CRC or a bad block
        self.packets = self.crc_errors = self.malformed = self.bytes_dropped = 0

    @property
    def pending(self) -> int:
        """Bytes held that make no complete block."""
        return len(self._buf) - self._used

    def feed(self, data: bytes) -> list[Packet]:
        found: list[Packet] = []
        if self._stopped:
            self.bytes_dropped += len(data)
            return found
        buf = self._buf
        buf += data
        if not self._found and not self._find_header():
            return found
        if not self._used:
            self._used = _PREFIX + 1  # the blocks follow the instruction byte
        size = self.length + _FAST_BLOCK
        total = _PREFIX + 1 + self.n_ids * size
        if not self.packets and len(buf) >= total and crc16(bytes(buf[: total - 2])) == _le16(buf, total - 2):
            # The whole packet at once: its last CRC covers every byte before it.
            found = [
                Packet(buf[at + 1], Instruction.STATUS, bytes(buf[at + 2 : at + size - 2]), buf[at])
                for at in range(_PREFIX + 1, total, size)
            ]
            if all(p.id <= MAX_ID for p in found):
                self.packets, self._used = self.n_ids, total
                return found
            found = []
        while self.packets < self.n_ids and len(buf) >= self._used + size:
            at, end = self._used, self._used + size
            crc = crc16(bytes(buf[self._used if self.packets else 0 : end - 2]), self._crc)
            if crc != _le16(buf, end - 2) or buf[at + 1] > MAX_ID:
                if crc != _le16(buf, end - 2):
                    self.crc_errors += 1
                else:
                    self.malformed += 1
                self._stopped = True
                self.bytes_dropped += len(buf) - at
                del buf[at:]
                break
            found.append(Packet(buf[at + 1], Instruction.STATUS, bytes(buf[at + 2 : end - 2]), buf[at]))
            self.packets += 1
            self._crc = crc16(bytes(buf[end - 2 : end]), crc)
            self._used = end
        return found

    def _find_header(self) -> bool:
        buf, head = self._buf, self._head
        at = buf.find(head)
        while at >= 0 and len(buf) > at + _PREFIX:
            if buf[at + _PREFIX] == Instruction.STATUS:
                self.bytes_dropped += at
                del buf[:at]
                self._found = True
                return True
            at = buf.find(head, at + 1)
        drop = at if at >= 0 else max(0, len(buf) - (len(head) - 1))
        self.bytes_dropped += drop
        del buf[:drop]
        return False


# ----------------------------------------------------------------------------- status errors


def status_error(error: int) -> tuple[bool, int, str]:
    """ERR byte -> (hardware alert: bit 7, code: low 7 bits, message)."""
    code = error & 0x7F
    message = _ERROR_MESSAGES[code] if code < len(_ERROR_MESSAGES) else f"unknown error code {code}"
    return bool(error & 0x80), code, message


def raise_for_status(packet: Packet) -> None:
    """StatusError when the status packet's error code is not 0.

    The alert bit alone is no error: it asks the host to read Hardware Error Status (address 70).
    """
    if packet.error is None:
        got = f"instruction {packet.instruction:#04x}"
        raise ProtocolError(f"expected a status packet from id {packet.id}, got {got}")
    alert, code, message = status_error(packet.error)
    if code:
        raise StatusError(packet.id, code, message + (" (hardware alert set)" if alert else ""))
