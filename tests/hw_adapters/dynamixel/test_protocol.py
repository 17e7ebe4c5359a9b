"""Dynamixel Protocol 2.0 codec: byte-exact vectors, stuffing, decoding and the streaming parser.

Expected bytes are built by hand from the packet layout of the e-Manual's Protocol 2.0 page, with a bit-by-bit
CRC written here independently of the table-driven one under test.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw_adapters.base import ChecksumError, MalformedPacketError, ProtocolError, StatusError
from hw_adapters.dynamixel import protocol as p
from hw_adapters.dynamixel.protocol import HEADER, Instruction, Packet, PacketParser

PING_1 = bytes.fromhex("FF FF FD 00 01 03 00 01 19 4E")


def ref_crc(data: bytes) -> int:
    """CRC-16, poly 0x8005, init 0, MSB first, no reflection, no final xor: one bit at a time."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def by_hand(servo_id: int, body: bytes) -> bytes:
    """A packet from its already-stuffed INST/ERR + params: header, id, LEN LE16, body, CRC LE16."""
    length = len(body) + 2
    head = HEADER + bytes([servo_id, length & 0xFF, length >> 8]) + body
    crc = ref_crc(head)
    return head + bytes([crc & 0xFF, crc >> 8])


def wire_bytes(packet: Packet) -> bytes:
    if packet.error is None:
        return p.encode_instruction(packet.id, packet.instruction, packet.params)
    return p.encode_status(packet.id, packet.error, packet.params)


# ----------------------------------------------------------------------------- CRC and vectors


def test_crc_known_vector_ping_id_1():
    assert p.crc16(PING_1[:-2]) == 0x4E19
    assert ref_crc(PING_1[:-2]) == 0x4E19
    assert p.ping(1) == PING_1
    assert p.crc16(b"") == 0


@given(st.binary(max_size=64))
def test_table_crc_matches_bitwise_crc(data):
    assert p.crc16(data) == ref_crc(data)


def test_read_4_bytes_at_132_from_id_1():
    # header | id 1 | LEN = inst + 4 params + 2 CRC = 7 | READ | address 132 LE | length 4 LE | CRC LE
    head = bytes([0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x07, 0x00, 0x02, 0x84, 0x00, 0x04, 0x00])
    assert ref_crc(head) == 0x151D
    assert p.read(1, 132, 4) == head + bytes([0x1D, 0x15])


def test_write_goal_position_512_to_id_1():
    # address 116 = 0x74, data 512 as 4 bytes LE; LEN = 1 + 2 + 4 + 2 = 9
    expected = bytes.fromhex("FF FF FD 00 01 09 00 03 74 00 00 02 00 00 CA 89")
    assert ref_crc(expected[:-2]) == 0x89CA
    assert p.write(1, 116, (512).to_bytes(4, "little")) == expected


def test_ping_status_vector():
    # id 1, LEN 7, STATUS, err 0, model number 1030 (06 04 LE), firmware 0x26
    expected = bytes.fromhex("FF FF FD 00 01 07 00 55 00 06 04 26 65 5D")
    assert p.encode_status(1, 0, bytes([0x06, 0x04, 0x26])) == expected
    assert p.decode_packet(expected) == Packet(1, Instruction.STATUS, b"\x06\x04\x26", 0)


def test_small_instruction_layouts():
    assert p.broadcast_ping() == by_hand(0xFE, b"\x01")
    assert p.reg_write(3, 0x0102, b"\x09") == by_hand(3, bytes([0x04, 0x02, 0x01, 0x09]))
    assert p.action(3) == by_hand(3, b"\x05")
    assert p.reboot(7) == by_hand(7, b"\x08")
    assert p.factory_reset(1, 0x02) == by_hand(1, b"\x06\x02")
    assert p.factory_reset(1) == by_hand(1, b"\x06\xff")


def test_sync_read_layout():
    # broadcast, LEN 9, 0x82, address 132 LE, length 4 LE, ids 1 and 2
    expected = bytes.fromhex("FF FF FD 00 FE 09 00 82 84 00 04 00 01 02 CE FA")
    assert ref_crc(expected[:-2]) == 0xFACE
    assert p.sync_read(132, 4, [1, 2]) == expected
    assert p.fast_sync_read(132, 4, [1, 2]) == by_hand(0xFE, bytes([0x8A, 0x84, 0, 4, 0, 1, 2]))


def test_sync_write_layout():
    # address 116, length 4, id 1 -> 150, id 2 -> 170 (LE); LEN = 1 + 4 + 2 * 5 + 2 = 17
    expected = bytes.fromhex("FF FF FD 00 FE 11 00 83 74 00 04 00 01 96 00 00 00 02 AA 00 00 00 82 87")
    assert ref_crc(expected[:-2]) == 0x8782
    data = {1: (150).to_bytes(4, "little"), 2: (170).to_bytes(4, "little")}
    assert p.sync_write(116, 4, data) == expected


def test_bulk_read_layout():
    body = bytes([0x92, 1, 0x84, 0x00, 0x04, 0x00, 2, 0x7A, 0x00, 0x01, 0x00])
    assert p.bulk_read([(1, 132, 4), (2, 122, 1)]) == by_hand(0xFE, body)


def test_bulk_write_layout():
    body = bytes([0x93, 1, 0x40, 0x00, 0x01, 0x00, 0x01, 2, 0x74, 0x00, 0x02, 0x00, 0x00, 0x08])
    assert p.bulk_write([(1, 64, b"\x01"), (2, 116, b"\x00\x08")]) == by_hand(0xFE, body)


# ----------------------------------------------------------------------------- status errors


def test_status_alert_bit_alone_is_not_an_error():
    packet = p.decode_packet(p.encode_status(1, 0x80, b"\x10"))
    assert packet.error == 0x80
    assert p.status_error(0x80) == (True, 0, "no error")
    p.raise_for_status(packet)


@pytest.mark.parametrize("error", [0x04, 0x84])
def test_status_data_range_raises(error):
    packet = p.decode_packet(p.encode_status(5, error))
    with pytest.raises(StatusError, match="servo 5: data range error") as info:
        p.raise_for_status(packet)
    assert (info.value.servo_id, info.value.code) == (5, 4)
    assert ("hardware alert" in str(info.value)) == bool(error & 0x80)


def test_status_error_messages():
    names = ["result fail", "instruction error", "CRC error", "data range error"]
    names += ["data length error", "data limit error", "access error"]
    for code, name in enumerate(names, start=1):
        assert p.status_error(code) == (False, code, name)
    assert p.status_error(0x89) == (True, 9, "unknown error code 9")


def test_raise_for_status_needs_a_status_packet():
    with pytest.raises(ProtocolError, match="expected a status packet"):
        p.raise_for_status(p.decode_packet(PING_1))


# ----------------------------------------------------------------------------- stuffing

STUFFING = [
    (b"\xff\xff", b"\xff\xff"),
    (b"\x01\xff\xff\xfd", b"\x01\xff\xff\xfd\xfd"),
    (b"\xff\xff\xfd\x01\xff\xff\xfd\x02", b"\xff\xff\xfd\xfd\x01\xff\xff\xfd\xfd\x02"),
    (b"\xff\xff\xfd\xff\xff\xfd", b"\xff\xff\xfd\xfd\xff\xff\xfd\xfd"),
    (b"\xff\xff\xff\xfd", b"\xff\xff\xff\xfd\xfd"),
    (b"\xff\xff\xfd\xfd", b"\xff\xff\xfd\xfd\xfd"),
    (b"\xfd\xff\xff\x00", b"\xfd\xff\xff\x00"),
    (b"\xff\xfd\xff\xff", b"\xff\xfd\xff\xff"),
]


@pytest.mark.parametrize(("plain", "stuffed"), STUFFING)
def test_stuff_and_unstuff(plain, stuffed):
    assert p.stuff(plain) == stuffed
    assert p.unstuff(stuffed) == plain


@pytest.mark.parametrize(("plain", "stuffed"), STUFFING)
def test_packet_length_and_crc_count_stuffed_bytes(plain, stuffed):
    packet = p.encode_instruction(1, Instruction.WRITE, b"\x40\x00" + plain)
    assert packet == by_hand(1, b"\x03\x40\x00" + stuffed)
    assert int.from_bytes(packet[5:7], "little") == 1 + 2 + len(stuffed) + 2
    assert p.decode_packet(packet) == Packet(1, Instruction.WRITE, b"\x40\x00" + plain)


def test_crc_is_over_the_stuffed_bytes():
    packet = p.encode_instruction(1, Instruction.WRITE, b"\xff\xff\xfd")
    unstuffed_head = HEADER + bytes([1, 7, 0, 0x03, 0xFF, 0xFF, 0xFD])
    assert int.from_bytes(packet[-2:], "little") == ref_crc(packet[:-2]) != ref_crc(unstuffed_head)


def test_stuffing_covers_instruction_and_error_bytes():
    # INST 0xFF followed by params FF FD: the pattern starts at the instruction byte
    assert p.encode_instruction(2, 0xFF, b"\xff\xfd\x00") == by_hand(2, b"\xff\xff\xfd\xfd\x00")
    # STATUS, ERR 0xFF, params FF FD: the pattern starts at the error byte
    status = p.encode_status(2, 0xFF, b"\xff\xfd")
    assert status == by_hand(2, b"\x55\xff\xff\xfd\xfd")
    assert p.decode_packet(status) == Packet(2, Instruction.STATUS, b"\xff\xfd", 0xFF)


def test_unstuff_rejects_a_bare_pattern():
    for bad in (b"\xff\xff\xfd", b"\xff\xff\xfd\x00", b"\x01\xff\xff\xfd\xfd\xff\xff\xfd\x01"):
        with pytest.raises(MalformedPacketError, match="stuffing"):
            p.unstuff(bad)
    with pytest.raises(MalformedPacketError, match="stuffing"):
        p.decode_packet(by_hand(1, b"\x03\xff\xff\xfd\x01"))


payload_bytes = st.lists(st.sampled_from([0x00, 0xFD, 0xFF]) | st.integers(0, 255), max_size=40).map(bytes)
servo_ids = st.integers(0, 252) | st.just(0xFE)


@given(payload_bytes)
def test_unstuff_inverts_stuff(data):
    stuffed = p.stuff(data)
    assert p.unstuff(stuffed) == data
    assert HEADER not in stuffed


@given(servo_ids, st.integers(0, 255).filter(lambda i: i != 0x55), payload_bytes)
def test_instruction_round_trip(servo_id, instruction, params):
    packet = p.encode_instruction(servo_id, instruction, params)
    assert p.decode_packet(packet) == Packet(servo_id, instruction, params)
    assert int.from_bytes(packet[5:7], "little") == len(packet) - 7


@given(servo_ids, st.integers(0, 255), payload_bytes)
def test_status_round_trip(servo_id, error, params):
    assert p.decode_packet(p.encode_status(servo_id, error, params)) == Packet(
        servo_id, Instruction.STATUS, params, error
    )


# ----------------------------------------------------------------------------- decode errors


def test_decode_rejects_bad_header_and_sizes():
    good = p.read(1, 132, 4)
    with pytest.raises(MalformedPacketError, match="header"):
        p.decode_packet(b"\xff\xff\xfd\x01" + good[4:])
    for cut in range(len(good)):
        with pytest.raises(MalformedPacketError):
            p.decode_packet(good[:cut])
    with pytest.raises(MalformedPacketError, match="trailing"):
        p.decode_packet(good + b"\x00")
    with pytest.raises(MalformedPacketError, match="LEN 2"):
        p.decode_packet(HEADER + bytes([1, 2, 0, 0x01, 0x00, 0x00]))


def test_decode_crc_mismatch_names_both_values():
    bad = PING_1[:-2] + b"\x19\x4f"
    with pytest.raises(ChecksumError, match="expected 0x4E19, got 0x4F19"):
        p.decode_packet(bad)


def test_decode_rejects_reserved_ids_and_empty_status():
    for reserved in (0xFD, 0xFF):
        with pytest.raises(MalformedPacketError, match="reserved id"):
            p.decode_packet(by_hand(reserved, b"\x01"))
    with pytest.raises(MalformedPacketError, match="error byte"):
        p.decode_packet(by_hand(1, b"\x55"))


def test_decode_keeps_unknown_instructions_as_ints():
    packet = p.decode_packet(by_hand(1, b"\x77\x01"))
    assert packet == Packet(1, 0x77, b"\x01")
    assert p.decode_packet(PING_1).instruction is Instruction.PING


# ----------------------------------------------------------------------------- encoder arguments


@pytest.mark.parametrize(
    "call",
    [
        lambda: p.ping(253),
        lambda: p.ping(255),
        lambda: p.ping(-1),
        lambda: p.encode_instruction(1, 0x55),
        lambda: p.encode_instruction(1, 256),
        lambda: p.encode_status(1, 256),
        lambda: p.encode_instruction(1, 0x03, bytes(0xFFFF)),
        lambda: p.read(1, 132, 0),
        lambda: p.read(1, 0x10000, 4),
        lambda: p.write(1, 116, b""),
        lambda: p.factory_reset(1, 0x03),
        lambda: p.sync_read(132, 4, []),
        lambda: p.sync_read(132, 4, [1, 1]),
        lambda: p.sync_read(132, 4, [0xFE]),
        lambda: p.sync_write(116, 4, {1: b"\x00\x00"}),
        lambda: p.bulk_read([(1, 132, 4), (1, 128, 4)]),
        lambda: p.bulk_write([(1, 64, b"")]),
    ],
)
def test_encoders_reject_bad_arguments(call):
    with pytest.raises(ValueError):
        call()


def test_longest_packet_is_accepted():
    params = bytes(0xFFFF - 3)  # LEN = INST + params + CRC = 0xFFFF
    assert len(p.encode_instruction(1, 0x03, params)) == 7 + 0xFFFF


# ----------------------------------------------------------------------------- device-side params


def params_of(packet: bytes) -> bytes:
    return p.decode_packet(packet).params


def test_params_round_trip_through_the_builders():
    assert p.parse_read(params_of(p.read(1, 132, 4))) == (132, 4)
    assert p.parse_write(params_of(p.write(1, 116, b"\x00\x02\x00\x00"))) == (116, b"\x00\x02\x00\x00")
    assert p.parse_write(params_of(p.reg_write(1, 64, b"\x01"))) == (64, b"\x01")
    assert p.parse_sync_read(params_of(p.sync_read(122, 25, [3, 1, 2]))) == (122, 25, [3, 1, 2])
    assert p.parse_sync_read(params_of(p.fast_sync_read(132, 4, [7]))) == (132, 4, [7])
    data = {1: b"\x01\x02", 9: b"\xff\xff"}
    assert p.parse_sync_write(params_of(p.sync_write(116, 2, data))) == (116, 2, data)
    items = [(1, 132, 4), (2, 122, 1)]
    assert p.parse_bulk_read(params_of(p.bulk_read(items))) == items
    writes = [(1, 64, b"\x01"), (2, 116, b"\x00\x08\x00\x00")]
    assert p.parse_bulk_write(params_of(p.bulk_write(writes))) == writes


@pytest.mark.parametrize(
    ("parse", "params"),
    [
        (p.parse_read, b"\x84\x00\x04"),
        (p.parse_read, b"\x84\x00\x04\x00\x00"),
        (p.parse_write, b"\x74\x00"),
        (p.parse_sync_read, b"\x84\x00\x04\x00"),
        (p.parse_sync_read, b"\x84\x00\x04\x00\x01\x01"),
        (p.parse_sync_read, b"\x84\x00\x04\x00\xfe"),
        (p.parse_sync_write, b"\x74\x00\x02\x00\x01\x00"),
        (p.parse_sync_write, b"\x74\x00\x00\x00\x01"),
        (p.parse_sync_write, b"\x74\x00\x01\x00\x01\x00\x01\x00"),
        (p.parse_bulk_read, b""),
        (p.parse_bulk_read, b"\x01\x84\x00\x04\x00\x02"),
        (p.parse_bulk_read, b"\x01\x84\x00\x04\x00\x01\x84\x00\x04\x00"),
        (p.parse_bulk_write, b"\x01\x40\x00\x02\x00\x01"),
        (p.parse_bulk_write, b"\x01\x40\x00\x00\x00"),
        (p.parse_bulk_write, b"\x01\x40\x00\x01\x00\x01\x02"),
    ],
)
def test_param_parsers_reject_wrong_lengths(parse, params):
    with pytest.raises(MalformedPacketError):
        parse(params)


# ----------------------------------------------------------------------------- streaming parser

STUFFED_WRITE = p.encode_instruction(3, Instruction.WRITE, b"\x00\x00\xff\xff\xfd\x01")
# Params ending FF FF, and a CRC that happens to be FD 00: a header-like run inside the packet's tail.
CRC_LOOKS_LIKE_HEADER = bytes.fromhex("ff ff fd 00 01 09 00 03 40 00 f8 bf ff ff fd 00")
STREAM = [PING_1, STUFFED_WRITE, CRC_LOOKS_LIKE_HEADER, p.encode_status(1, 0x80, b"\xff\xff")]


def decoded(*packets: bytes) -> list[Packet]:
    return [p.decode_packet(x) for x in packets]


def test_crc_tail_vector_is_what_it_claims():
    assert CRC_LOOKS_LIKE_HEADER.endswith(b"\xff\xff" + b"\xfd\x00")
    assert ref_crc(CRC_LOOKS_LIKE_HEADER[:-2]) == 0x00FD


def test_parser_split_at_every_byte_boundary():
    data = b"".join(STREAM)
    for cut in range(len(data) + 1):
        parser = PacketParser()
        assert parser.feed(data[:cut]) + parser.feed(data[cut:]) == decoded(*STREAM), cut
        assert (parser.packets, parser.bytes_dropped, parser.buffered) == (len(STREAM), 0, 0)


def test_parser_byte_by_byte():
    parser = PacketParser()
    found = [packet for byte in b"".join(STREAM) for packet in parser.feed(bytes([byte]))]
    assert found == decoded(*STREAM)


def test_parser_two_packets_in_one_feed():
    assert PacketParser().feed(PING_1 + STUFFED_WRITE) == decoded(PING_1, STUFFED_WRITE)


def test_parser_garbage_before_and_between():
    parser = PacketParser()
    garbage = [b"\x00\x12\xff\xff", b"\xff\xff\xfd", b"\xfd\x00\xff"]
    data = garbage[0] + PING_1 + garbage[1] + STUFFED_WRITE + garbage[2]
    assert parser.feed(data) == decoded(PING_1, STUFFED_WRITE)
    assert parser.bytes_dropped == 4 + 3 + 2 and parser.buffered == 1  # a trailing FF may start a header


def test_parser_header_straddles_feeds_after_garbage():
    for cut in (1, 2, 3):
        parser = PacketParser()
        assert parser.feed(b"\x11\x22" + PING_1[:cut]) == []
        assert parser.buffered == cut
        assert parser.feed(PING_1[cut:]) == decoded(PING_1)
        assert parser.bytes_dropped == 2


def test_parser_skips_a_bad_crc_packet():
    parser = PacketParser()
    corrupted = bytearray(STUFFED_WRITE)
    corrupted[9] ^= 0x01
    assert parser.feed(bytes(corrupted) + PING_1) == decoded(PING_1)
    assert (parser.crc_errors, parser.packets, parser.bytes_dropped) == (1, 1, len(corrupted))


def test_parser_truncated_packet_then_complete_one():
    long_write = p.write(1, 116, bytes(20))
    cases = [(PING_1[:6], 0), (p.read(1, 132, 4)[:-3], 1), (long_write[:12], 0)]
    for truncated, crc_errors in cases:
        parser = PacketParser()
        assert parser.feed(truncated + PING_1) == decoded(PING_1)
        assert (parser.crc_errors, parser.bytes_dropped, parser.buffered) == (crc_errors, len(truncated), 0)


def test_parser_treats_a_huge_length_as_garbage():
    parser = PacketParser()
    bogus = HEADER + bytes([1, 0xFF, 0x7F, 0x03])
    assert parser.feed(bogus + PING_1) == decoded(PING_1)
    assert parser.buffered == 0 and parser.bytes_dropped == len(bogus)


def test_parser_bounded_while_a_long_noise_header_waits():
    parser = PacketParser(max_length=1024)
    assert parser.feed(HEADER + bytes([1, 0x00, 0x04]) + bytes(5000)) == []
    assert parser.buffered <= 6 + 1024
    parser = PacketParser(max_length=1024)
    assert parser.feed(HEADER + bytes([1, 0x00, 0x04, 0x03]) + bytes(20)) == []
    assert parser.feed(PING_1) == decoded(PING_1)  # the next header gives the pending one up at once


def test_parser_reset_and_bad_max_length():
    parser = PacketParser()
    parser.feed(PING_1[:5])
    parser.reset()
    assert (parser.buffered, parser.bytes_dropped) == (0, 5)
    assert parser.feed(PING_1) == decoded(PING_1)
    with pytest.raises(ValueError):
        PacketParser(max_length=0xFF00)


def test_parser_counts_a_malformed_packet_with_a_good_crc():
    parser = PacketParser()
    assert parser.feed(by_hand(1, b"\x03\xff\xff\xfd\x01") + PING_1) == decoded(PING_1)
    assert (parser.malformed, parser.crc_errors) == (1, 0)


valid_packets = st.builds(
    p.encode_instruction, servo_ids, st.sampled_from(list(Instruction)[:8]), payload_bytes
)
valid_packets |= st.builds(p.encode_status, st.integers(0, 252), st.integers(0, 255), payload_bytes)
noise = st.binary(max_size=30) | st.sampled_from([HEADER, HEADER[:3], HEADER + b"\x01", HEADER + b"\x01\x10"])
chunks = st.lists(noise | valid_packets | valid_packets.map(lambda x: x[: len(x) // 2]), max_size=12)


def feed_in_pieces(parser: PacketParser, data: bytes, cuts: list[int]) -> list[Packet]:
    found, start = [], 0
    for cut in sorted({min(c, len(data)) for c in cuts}) + [len(data)]:
        found += parser.feed(data[start:cut])
        start = cut
        assert parser.buffered <= 6 + parser.max_length
    return found


@settings(max_examples=150, deadline=None)
@given(chunks, st.lists(st.integers(0, 400), max_size=8))
def test_parser_fuzz_never_raises_and_accounts_for_every_byte(parts, cuts):
    data = b"".join(parts)
    parser = PacketParser(max_length=64)
    found = feed_in_pieces(parser, data, cuts)
    assert sum(len(wire_bytes(x)) for x in found) + parser.bytes_dropped + parser.buffered == len(data)
    assert parser.packets == len(found)


@settings(max_examples=150, deadline=None)
@given(chunks, st.lists(valid_packets, min_size=1, max_size=3), st.lists(st.integers(0, 400), max_size=8))
def test_parser_finds_valid_packets_after_garbage(parts, packets, cuts):
    parser = PacketParser(max_length=64)
    found = feed_in_pieces(parser, b"".join(parts) + b"".join(packets), cuts)
    assert found[-len(packets) :] == decoded(*packets)
