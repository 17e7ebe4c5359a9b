"""Byte-exact tests of the Feetech SCS/STS codec (hw_adapters/feetech/protocol.py).

The expected packets are written out by hand from Feetech's SCS/STS protocol:
FF FF | ID | LEN | INST/ERR | params | CHK, LEN = len(params) + 2,
CHK = ~(ID + LEN + INST/ERR + params) & 0xFF. `_chk` below recomputes each hand-written
checksum without the module, so a typo in a vector fails loudly.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from hw_adapters.base import ChecksumError, MalformedPacketError, ProtocolError, StatusError
from hw_adapters.feetech import protocol as p
from hw_adapters.feetech.protocol import Instruction, Packet, PacketParser


def _chk(body: bytes) -> int:
    return ~sum(body) & 0xFF


# (built, hand-written packet, arithmetic behind the checksum)
VECTORS = {
    "ping id 1": (p.ping(1), "FF FF 01 02 01 FB"),  # ~(1+2+1)=~0x04
    # READ 2 bytes at 56 (0x38) from id 1: ~(1+4+2+0x38+2) = ~0x41 = 0xBE
    "read present position": (p.read(1, 56, 2), "FF FF 01 04 02 38 02 BE"),
    # WRITE goal position 2048 (00 08 little-endian) at 42 (0x2A) to id 3: ~(3+5+3+0x2A+0+8) = ~0x3D
    "write goal position": (p.write(3, 42, (2048).to_bytes(2, "little")), "FF FF 03 05 03 2A 00 08 C2"),
    # SYNC_WRITE goal position 1000/2048/3000 to ids 1..3, 11 params, LEN 0x0D:
    # FE+0D+83+2A+02+01+E8+03+02+00+08+03+B8+0B = 0x376 -> ~0x76 = 0x89
    "sync write goals": (
        p.sync_write(42, 2, {1: b"\xe8\x03", 2: b"\x00\x08", 3: b"\xb8\x0b"}),
        "FF FF FE 0D 83 2A 02 01 E8 03 02 00 08 03 B8 0B 89",
    ),
    # SYNC_READ 2 bytes at 56 from ids 1..3: FE+07+82+38+02+01+02+03 = 0x1C7 -> ~0xC7 = 0x38
    "sync read positions": (p.sync_read(56, 2, [1, 2, 3]), "FF FF FE 07 82 38 02 01 02 03 38"),
    "action broadcast": (p.action(), "FF FF FE 02 05 FA"),  # ~(FE+02+05)=~0x105
    "reg write": (p.reg_write(1, 40, b"\x01"), "FF FF 01 04 04 28 01 CD"),  # ~(1+4+4+0x28+1)=~0x32
    # status from id 1, no error, present position 2048: ~(1+4+0+0+8) = ~0x0D = 0xF2
    "status 2 bytes": (p.encode_status(1, 0, b"\x00\x08"), "FF FF 01 04 00 00 08 F2"),
    "status overload": (p.encode_status(1, 0x20), "FF FF 01 02 20 DC"),  # ~(1+2+0x20)=~0x23
}


@pytest.mark.parametrize("name", VECTORS)
def test_vectors_are_byte_exact(name: str) -> None:
    built, text = VECTORS[name]
    expected = bytes.fromhex(text)
    assert _chk(expected[2:-1]) == expected[-1], "hand-written vector has a wrong checksum"
    assert expected[3] == len(expected) - 4
    assert built == expected
    assert p.checksum(expected[2:-1]) == expected[-1]


def test_decode_vectors() -> None:
    assert p.decode_instruction(bytes.fromhex("FF FF 01 02 01 FB")) == Packet(1, Instruction.PING, b"", None)
    write = p.decode_instruction(bytes.fromhex("FF FF 03 05 03 2A 00 08 C2"))
    assert (write.id, write.instruction, p.parse_write(write.params)) == (
        3,
        Instruction.WRITE,
        (42, b"\x00\x08"),
    )
    read = p.decode_instruction(bytes.fromhex("FF FF 01 04 02 38 02 BE"))
    assert p.parse_read(read.params) == (56, 2)
    sync = p.decode_instruction(bytes.fromhex("FF FF FE 07 82 38 02 01 02 03 38"))
    assert sync.id == p.BROADCAST_ID and p.parse_sync_read(sync.params) == (56, 2, [1, 2, 3])
    sw = p.decode_instruction(bytes.fromhex("FF FF FE 0D 83 2A 02 01 E8 03 02 00 08 03 B8 0B 89"))
    assert p.parse_sync_write(sw.params) == (42, 2, {1: b"\xe8\x03", 2: b"\x00\x08", 3: b"\xb8\x0b"})
    unknown = p.decode_instruction(bytes.fromhex("FF FF 01 02 7F 7D"))  # ~(1+2+0x7F) = ~0x82
    assert unknown.instruction == 0x7F and not isinstance(unknown.instruction, Instruction)


def test_status_reply_and_errors() -> None:
    ok = p.decode_status(bytes.fromhex("FF FF 01 04 00 00 08 F2"))
    assert ok == Packet(1, None, b"\x00\x08", 0)
    p.raise_for_status(ok)
    bad = p.decode_status(bytes.fromhex("FF FF 01 02 20 DC"))
    with pytest.raises(StatusError, match="overload") as info:
        p.raise_for_status(bad)
    assert (info.value.servo_id, info.value.code) == (1, 0x20)
    with pytest.raises(ValueError):
        p.raise_for_status(p.decode_instruction(p.ping(1)))


def test_status_error_names() -> None:
    assert p.status_error(0) == []
    assert p.status_error(0x01) == ["input voltage"]
    assert p.status_error(0x2F) == ["input voltage", "angle sensor", "overheat", "over current", "overload"]
    assert p.status_error(0x90) == ["unknown bit 4", "unknown bit 7"]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ("FF FF 01 02 01", "shorter"),
        ("FF FE 01 02 01 FB", "not ff ff"),
        ("FF FF FF 02 01 FD", "impossible"),  # id 0xFF
        ("FF FF 01 01 01 FC", "impossible"),  # LEN below 2
        ("FF FF 01 FB 01 00", "impossible"),  # LEN above MAX_LENGTH
        ("FF FF 01 04 02 38 02", "truncated"),
        ("FF FF 01 02 01 FB 00", "trailing"),
    ],
)
def test_decode_malformed(data: str, match: str) -> None:
    with pytest.raises(MalformedPacketError, match=match):
        p.decode_instruction(bytes.fromhex(data))


def test_decode_checksum_error_names_both_values() -> None:
    with pytest.raises(ChecksumError, match="0xFA, expected 0xFB"):
        p.decode_instruction(bytes.fromhex("FF FF 01 02 01 FA"))


def test_broadcast_is_instruction_only() -> None:
    assert p.decode_instruction(bytes.fromhex("FF FF FE 02 01 FE")).id == p.BROADCAST_ID  # ~(FE+2+1)=~0x101
    with pytest.raises(MalformedPacketError):
        p.decode_status(bytes.fromhex("FF FF FE 02 00 FF"))  # ~(FE+2+0)=~0x100
    with pytest.raises(ValueError):
        p.encode_status(p.BROADCAST_ID, 0)


@pytest.mark.parametrize(
    "build",
    [
        lambda: p.ping(255),
        lambda: p.encode_instruction(1, 256),
        lambda: p.encode_instruction(1, 1, bytes(p.MAX_PARAMS + 1)),
        lambda: p.read(1, 56, 0),
        lambda: p.read(1, 256, 2),
        lambda: p.write(1, 42, b""),
        lambda: p.sync_read(56, 2, []),
        lambda: p.sync_read(56, 2, [1, 1]),
        lambda: p.sync_read(56, 2, [p.BROADCAST_ID]),
        lambda: p.sync_write(42, 2, {}),
        lambda: p.sync_write(42, 2, {1: b"\x00"}),
        lambda: p.encode_sign_magnitude(1, 16, 2),
        lambda: p.decode_sign_magnitude(b"\x00", 8),
    ],
)
def test_bad_arguments_raise_value_error(build: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        build()


@pytest.mark.parametrize(
    ("parse", "params"),
    [
        (p.parse_read, "38"),
        (p.parse_read, "38 02 00"),
        (p.parse_read, "38 00"),
        (p.parse_write, "2A"),
        (p.parse_sync_read, "38 02"),
        (p.parse_sync_read, "38 00 01"),
        (p.parse_sync_write, "2A 02 01 00"),  # 2 data bytes, stride 3
        (p.parse_sync_write, "2A 02"),  # no ids
        (p.parse_sync_write, "2A 00 01"),  # zero length
        (p.parse_sync_write, "2A 01 01 00 01 05"),  # id 1 twice
    ],
)
def test_param_parsers_reject_wrong_lengths(parse: Callable[[bytes], object], params: str) -> None:
    with pytest.raises(MalformedPacketError):
        parse(bytes.fromhex(params))


def test_sign_magnitude_vectors() -> None:
    assert p.encode_sign_magnitude(-100, 15, 2) == bytes.fromhex("64 80")
    assert p.encode_sign_magnitude(100, 15, 2) == bytes.fromhex("64 00")
    assert p.decode_sign_magnitude(bytes.fromhex("64 80"), 15) == -100
    assert p.encode_sign_magnitude(-300, 11, 2) == bytes.fromhex("2C 09")  # 0x12C | 0x800
    assert p.decode_sign_magnitude(bytes.fromhex("2C 09"), 11) == -300
    assert p.encode_sign_magnitude(0, 10, 2) == p.encode_sign_magnitude(-0, 10, 2) == b"\x00\x00"
    # saturation at 2**sign_bit - 1
    assert p.encode_sign_magnitude(5000, 11, 2) == bytes.fromhex("FF 07")
    assert p.encode_sign_magnitude(-5000, 11, 2) == bytes.fromhex("FF 0F")
    assert p.encode_sign_magnitude(-40000, 15, 2) == bytes.fromhex("FF FF")
    assert p.encode_sign_magnitude(2000, 10, 2) == bytes.fromhex("FF 03")
    # bits above the sign bit are ignored
    assert p.decode_sign_magnitude(bytes.fromhex("05 F4"), 10) == -5


@given(st.data(), st.sampled_from([(15, 2), (11, 2), (10, 2), (7, 1)]))
def test_sign_magnitude_round_trip(data: st.DataObject, field: tuple[int, int]) -> None:
    sign_bit, size = field
    limit = (1 << sign_bit) - 1
    value = data.draw(st.integers(-limit, limit))
    raw = p.encode_sign_magnitude(value, sign_bit, size)
    assert len(raw) == size and p.decode_sign_magnitude(raw, sign_bit) == value
    outside = data.draw(st.integers(limit + 1, 10 * limit))
    assert p.decode_sign_magnitude(p.encode_sign_magnitude(outside, sign_bit, size), sign_bit) == limit
    assert p.decode_sign_magnitude(p.encode_sign_magnitude(-outside, sign_bit, size), sign_bit) == -limit


IDS = st.integers(0, p.MAX_ID)
PARAMS = st.binary(max_size=p.MAX_PARAMS)


@st.composite
def instructions(draw: st.DrawFn) -> Packet:
    ident = draw(IDS | st.just(p.BROADCAST_ID))
    return Packet(ident, draw(st.sampled_from(list(Instruction))), draw(st.binary(max_size=40)), None)


def _wire(packet: Packet) -> bytes:
    if packet.error is None:
        assert packet.instruction is not None
        return p.encode_instruction(packet.id, packet.instruction, packet.params)
    return p.encode_status(packet.id, packet.error, packet.params)


@given(IDS | st.just(p.BROADCAST_ID), st.integers(0, 255), PARAMS)
def test_instruction_round_trip(ident: int, code: int, params: bytes) -> None:
    wire = p.encode_instruction(ident, code, params)
    assert len(wire) == len(params) + 6 and wire[3] == len(params) + 2
    assert p.decode_instruction(wire) == Packet(ident, code, params, None)


@given(IDS, st.integers(0, 255), PARAMS)
def test_status_round_trip(ident: int, error: int, params: bytes) -> None:
    assert p.decode_status(p.encode_status(ident, error, params)) == Packet(ident, None, params, error)


@given(IDS, PARAMS, st.data())
def test_any_single_byte_corruption_is_detected(ident: int, params: bytes, data: st.DataObject) -> None:
    wire = bytearray(p.encode_status(ident, 0, params))
    index = data.draw(st.integers(0, len(wire) - 1))
    wire[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(ProtocolError):
        p.decode_status(bytes(wire))


@given(st.integers(0, 255), st.integers(1, 8), st.data())
def test_sync_write_round_trip(address: int, length: int, data: st.DataObject) -> None:
    values = st.binary(min_size=length, max_size=length)
    data_by_id = data.draw(st.dictionaries(IDS, values, min_size=1, max_size=20))
    packet = p.decode_instruction(p.sync_write(address, length, data_by_id))
    assert packet.id == p.BROADCAST_ID and packet.instruction == Instruction.SYNC_WRITE
    assert p.parse_sync_write(packet.params) == (address, length, data_by_id)


# --- streaming parser -----------------------------------------------------------------------------

PING1 = bytes.fromhex("FF FF 01 02 01 FB")
READ1 = bytes.fromhex("FF FF 01 04 02 38 02 BE")
WRITE3 = bytes.fromhex("FF FF 03 05 03 2A 00 08 C2")
STREAM = PING1 + READ1 + WRITE3
EXPECTED = [p.decode_instruction(x) for x in (PING1, READ1, WRITE3)]


def test_parser_split_at_every_boundary() -> None:
    for cut in range(len(STREAM) + 1):
        parser = PacketParser("instruction")
        assert parser.feed(STREAM[:cut]) + parser.feed(STREAM[cut:]) == EXPECTED
        assert parser.pending == 0 and parser.bytes_dropped == 0
    parser = PacketParser("instruction")
    assert [x for b in STREAM for x in parser.feed(bytes([b]))] == EXPECTED
    assert parser.packets == 3


def test_parser_several_packets_per_feed() -> None:
    parser = PacketParser("instruction")
    assert parser.feed(STREAM + STREAM) == EXPECTED + EXPECTED
    assert (parser.packets, parser.checksum_errors, parser.bytes_dropped) == (6, 0, 0)


def test_parser_skips_garbage_and_runs_of_ff() -> None:
    garbage = [b"\x00\x12\xff", b"\xff\xff\xff", b"\xff", b"\xff\xff\x01\xfe"]  # last: LEN 0xFE is too long
    stream = garbage[0] + PING1 + garbage[1] + READ1 + garbage[2] + WRITE3 + garbage[3] + PING1 + b"\xff"
    parser = PacketParser("instruction")
    assert parser.feed(stream) == [*EXPECTED, EXPECTED[0]]
    assert parser.pending == 1  # the trailing FF may start a header
    assert parser.bytes_dropped == sum(map(len, garbage))
    assert parser.checksum_errors == 0


def test_parser_drops_bad_checksum_then_finds_good() -> None:
    bad = PING1[:-1] + b"\xfa"
    parser = PacketParser("instruction")
    assert parser.feed(bad + READ1) == [EXPECTED[1]]
    assert (parser.checksum_errors, parser.packets, parser.bytes_dropped) == (1, 1, len(bad))


def test_parser_truncated_then_complete() -> None:
    parser = PacketParser("instruction")
    assert parser.feed(WRITE3[:5]) == []
    assert parser.pending == 5
    assert parser.feed(WRITE3[5:] + PING1[:3]) == [EXPECTED[2]]
    assert parser.feed(PING1[3:]) == [EXPECTED[0]]


FALSE_HEADER = b"\xff\xff\x05\x40"  # plausible: claims 0x40 params + CHK, would swallow READ1


def test_parser_gives_up_a_false_header_once_a_packet_completes_inside_it() -> None:
    parser = PacketParser("instruction")
    assert parser.feed(FALSE_HEADER + READ1[:5]) == []  # nothing contradicts the header yet
    assert parser.pending == len(FALSE_HEADER) + 5
    assert parser.feed(READ1[5:]) == [EXPECTED[1]]  # at once, not 0x40 bytes later
    assert parser.pending == 0 and parser.bytes_dropped == len(FALSE_HEADER)


def test_parser_answers_a_ping_behind_a_long_false_header_in_one_write() -> None:
    stream = bytes.fromhex("ff ff 01 fa") + bytes(10) + PING1  # LEN 250 would span 254 bytes
    assert PacketParser("instruction").feed(stream) == [EXPECTED[0]]


def test_parser_a_packet_inside_the_params_of_one_still_arriving_wins() -> None:
    # Without byte stuffing a packet may carry another in its params: whole, the outer one is
    # decoded; in pieces, the inner one completes first and is taken (the documented limit).
    outer = p.write(3, 42, READ1)
    assert PacketParser("instruction").feed(outer) == [p.decode_instruction(outer)]
    parser = PacketParser("instruction")
    assert parser.feed(outer[:-1]) == [EXPECTED[1]]


def test_parser_status_kind_and_reset() -> None:
    reply = bytes.fromhex("FF FF 01 04 00 00 08 F2")
    parser = PacketParser("status")
    broadcast = bytes.fromhex("FF FF FE 02 00 FF")  # no servo answers from the broadcast id
    assert parser.feed(broadcast + reply) == [Packet(1, None, b"\x00\x08", 0)]
    assert parser.bytes_dropped == len(broadcast)
    parser.feed(reply[:4])
    parser.reset()
    assert parser.pending == 0 and parser.feed(reply[4:]) == []
    with pytest.raises(ValueError):
        PacketParser("reply")  # type: ignore[arg-type]


# Header-like garbage: plenty of FF runs, small ids and lengths, so false headers are common.
GARBAGE = st.lists(
    st.sampled_from([0xFF, 0xFF, 0xFF, 0x00, 0x01, 0x02, 0x04, 0xFE]) | st.integers(0, 255)
).map(bytes)


@given(st.binary(max_size=600) | GARBAGE, st.lists(st.integers(0, 600)))
def test_parser_fuzz_never_raises_and_accounts_for_every_byte(data: bytes, cuts: list[int]) -> None:
    parser = PacketParser("instruction")
    found: list[Packet] = []
    for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(data)], strict=True):
        found += parser.feed(data[a:b])
    assert parser.pending <= p.MAX_LENGTH + 3
    consumed = sum(len(x.params) + 6 for x in found)
    assert consumed + parser.bytes_dropped + parser.pending == len(data)
    for packet in found:
        assert _wire(packet) in data


NO_FF = st.binary(max_size=30).map(lambda b: b.replace(b"\xff", b"\x00"))


@given(st.lists(st.tuples(NO_FF, instructions()), max_size=8), st.lists(st.integers(0, 2000)))
def test_parser_finds_every_packet_between_garbage(
    items: list[tuple[bytes, Packet]], cuts: list[int]
) -> None:
    stream = b"".join(garbage + _wire(packet) for garbage, packet in items)
    parser = PacketParser("instruction")
    found: list[Packet] = []
    for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(stream)], strict=True):
        found += parser.feed(stream[a:b])
    assert found == [packet for _, packet in items]
    assert parser.bytes_dropped == sum(len(g) for g, _ in items) and parser.checksum_errors == 0


@given(st.binary(max_size=300) | GARBAGE, instructions())
def test_parser_finds_packet_after_arbitrary_garbage(garbage: bytes, packet: Packet) -> None:
    wire = _wire(packet)
    stream = garbage + wire + bytes(p.MAX_LENGTH + 4)
    # Skip the rare case where a false header in the garbage has a valid checksum and overlaps the packet.
    for i in range(len(garbage)):
        if stream[i : i + 2] == p.HEADER and i + 3 < len(stream):
            candidate = stream[i : i + stream[i + 3] + 4]
            if i + len(candidate) > len(garbage):
                try:
                    p.decode_instruction(candidate)
                except ProtocolError:
                    continue
                assume(False)
    found = PacketParser("instruction").feed(stream)
    assert found[-1] == packet
