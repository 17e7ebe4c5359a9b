"""SerialLink: transactions, reply timeouts, short replies, a lost port, on ScriptedPort and real pyserial."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import serial
from hypothesis import given
from hypothesis import strategies as st

from hw_adapters.base import BusError, ConfigError
from hw_adapters.fake_port import ScriptedPort
from hw_adapters.serial_link import LinkStats, SerialLink

PING = bytes.fromhex("ffff fd00 0103 0001 1900 4e")  # 11 bytes; the content does not matter here
STATUS = bytes.fromhex("ffff fd00 0107 0055 0006 0426 65 5d")  # 14 bytes

needs_pty = pytest.mark.skipif(
    not hasattr(os, "openpty") or sys.platform == "darwin", reason="needs a Linux pseudo-terminal"
)


def scripted(respond=None, baud: int = 1_000_000, **kwargs) -> tuple[SerialLink, ScriptedPort]:
    port = ScriptedPort(respond)
    return SerialLink("/dev/ttyFAKE0", baud, open_port=port.open_port, **kwargs), port


def replies(mapping: dict[bytes, bytes]):
    return lambda packet: mapping.get(packet)


# -- ScriptedPort ----------------------------------------------------------------------------
def test_transact_writes_exactly_the_packet_and_returns_the_reply() -> None:
    link, port = scripted(replies({PING: STATUS}))
    assert link.transact(PING, len(STATUS)) == STATUS
    assert port.written == [PING]
    assert port.open_kwargs["url"] == "/dev/ttyFAKE0"
    assert port.open_kwargs["baudrate"] == 1_000_000
    assert port.open_kwargs["timeout"] > 0 and port.open_kwargs["write_timeout"] >= 1.0
    assert link.stats == LinkStats(
        bytes_out=len(PING),
        bytes_in=len(STATUS),
        transactions=1,
        short_replies=0,
        last_transaction_s=link.stats.last_transaction_s,
    )
    assert 0.0 < link.stats.last_transaction_s < 0.5


def test_reply_timeout_counts_every_byte_the_delays_the_latency_and_the_margin() -> None:
    # 1 Mbps: 14-byte sync read + 2 replies of 15 bytes = 44 bytes = 440 us;
    # 2 servos x 500 us return delay; 2 ms latency timer; 2 ms margin.
    packet = bytes(14)
    link, port = scripted(lambda p: bytes(30), latency_s=0.002, margin_s=0.002)
    assert link.expected_time_s(44, 2 * 500e-6) == pytest.approx(440e-6 + 1e-3)
    assert link.transact(packet, 30, return_delays_s=2 * 500e-6) == bytes(30)
    assert port.read_timeouts == [pytest.approx(440e-6 + 1e-3 + 0.002 + 0.002)]
    assert port.read_timeouts[0] == pytest.approx(link.read_timeout_s(44, 1e-3))


@pytest.mark.parametrize(("baud", "wire_s"), [(57_600, 44 * 10 / 57_600), (115_200, 44 * 10 / 115_200)])
def test_reply_timeout_follows_the_baud_rate(baud: int, wire_s: float) -> None:
    link, port = scripted(baud=baud, latency_s=0.001, margin_s=0.0)
    link.transact(bytes(14), 30)
    assert port.read_timeouts == [pytest.approx(wire_s + 0.001)]


@given(
    baud=st.sampled_from([9_600, 57_600, 115_200, 1_000_000, 4_000_000]),
    packet_len=st.integers(1, 300),
    reply_bytes=st.integers(1, 300),
    delays=st.floats(0.0, 0.01),
)
def test_reply_timeout_is_the_formula_for_any_sizes(
    baud: int, packet_len: int, reply_bytes: int, delays: float
) -> None:
    link, port = scripted(baud=baud)
    link.transact(bytes(packet_len), reply_bytes, delays)
    expected = (packet_len + reply_bytes) * 10 / baud + delays + 0.002 + 0.002
    assert port.read_timeouts == [pytest.approx(expected)]


def test_a_short_reply_is_returned_short_and_counted() -> None:
    link, port = scripted(replies({PING: STATUS[:5]}))
    assert link.transact(PING, len(STATUS)) == STATUS[:5]
    assert link.transact(b"\x01", 4) == b""  # nobody answers
    assert (link.stats.short_replies, link.stats.transactions, link.stats.bytes_in) == (2, 2, 5)


def test_read_more_reads_the_rest_with_the_callers_timeout() -> None:
    link, port = scripted(replies({PING: STATUS}))
    head = link.transact(PING, 7)
    first = link.stats.last_transaction_s
    rest = link.read_more(len(STATUS) - 7 + 3, 0.0125)  # 3 more than are there
    assert head + rest == STATUS
    assert port.read_timeouts[-1] == 0.0125
    assert link.stats.bytes_in == len(STATUS)
    assert link.stats.short_replies == 1
    assert link.stats.last_transaction_s >= first
    assert link.read_more(0, 0.01) == b""


def test_stale_input_is_cleared_before_each_transaction() -> None:
    link, port = scripted(replies({PING: STATUS}))
    port.feed(b"\xff\xff\xfd\x00 stale echo")
    assert link.transact(PING, len(STATUS)) == STATUS
    port.feed(b"noise")
    assert link.transact(PING, len(STATUS)) == STATUS
    assert port.input_resets == 2


def test_reply_bytes_zero_writes_only() -> None:
    link, port = scripted(lambda p: b"should not be read")
    assert link.transact(b"\xfe broadcast", 0) == b""
    link.write(b"raw")
    assert port.written == [b"\xfe broadcast", b"raw"]
    assert port.read_timeouts == []
    assert (link.stats.transactions, link.stats.bytes_out, link.stats.short_replies) == (1, 14, 0)


def test_bad_sizes_are_refused() -> None:
    link, _ = scripted()
    with pytest.raises(ValueError):
        link.transact(PING, -1)
    with pytest.raises(ValueError):
        link.read_more(-1, 0.01)
    with pytest.raises(ValueError):
        link.read_more(1, float("nan"))


def test_a_port_lost_on_read_raises_bus_error_naming_it_then_closed() -> None:
    lost = serial.SerialException("device reports readiness to read but returned no data")
    link, port = scripted(lambda p: lost)
    with pytest.raises(BusError, match=r"serial port /dev/ttyFAKE0 was lost: device reports") as info:
        link.transact(PING, len(STATUS))
    assert info.value.__cause__ is lost
    assert not port.is_open and not link.is_open
    for call in (lambda: link.transact(PING, 1), lambda: link.write(PING), lambda: link.read_more(1, 0.01)):
        with pytest.raises(BusError, match=r"serial port /dev/ttyFAKE0 is closed"):
            call()
    link.close()  # still fine


def test_an_os_error_on_write_is_a_lost_port_too() -> None:
    link, port = scripted()
    port.fail(OSError(5, "Input/output error"))
    with pytest.raises(BusError, match=r"/dev/ttyFAKE0 was lost: Input/output error"):
        link.write(PING)
    with pytest.raises(BusError, match="is closed"):
        link.transact(PING, 1)


def test_close_is_idempotent_and_later_calls_raise_closed() -> None:
    link, port = scripted()
    link.close()
    link.close()
    assert not port.is_open
    with pytest.raises(BusError, match=r"^serial port /dev/ttyFAKE0 is closed$"):
        link.transact(PING, 1)
    with SerialLink("loop://", 9600) as other:
        assert other.is_open
    assert not other.is_open


@pytest.mark.parametrize("baud", [0, -9600, True, 1.5])
def test_baud_must_be_a_positive_integer(baud: object) -> None:
    with pytest.raises(ConfigError, match="baud must be a positive"):
        SerialLink("loop://", baud)  # type: ignore[arg-type]


def test_negative_latency_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="latency_s"):
        SerialLink("loop://", 9600, latency_s=-0.001)


# -- real pyserial ---------------------------------------------------------------------------
def test_loop_url_echoes_a_write_as_the_reply() -> None:
    with SerialLink("loop://", 115_200) as link:
        assert link.transact(PING, len(PING)) == PING
        link.write(b"\x01\x02\x03")
        assert link.read_more(3, 0.05) == b"\x01\x02\x03"
        assert link.stats.bytes_in == len(PING) + 3


def test_a_missing_device_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError) as info:
        SerialLink("/dev/does-not-exist", 1_000_000)
    assert str(info.value) == "cannot open serial port /dev/does-not-exist: No such file or directory"
    assert info.value.__cause__ is None and info.value.__suppress_context__


@needs_pty
def test_a_file_that_is_not_a_tty_is_a_config_error(tmp_path) -> None:
    path = tmp_path / "not-a-tty"
    path.write_bytes(b"")
    with pytest.raises(ConfigError, match=rf"cannot open serial port {path}: Inappropriate ioctl"):
        SerialLink(str(path), 1_000_000)


def test_an_unknown_url_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"cannot open serial port bogus://x: .*bogus"):
        SerialLink("bogus://x", 1_000_000)


def _cpu_and_wall(call) -> tuple[object, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = call()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def test_waiting_for_a_reply_on_loop_url_does_not_burn_cpu() -> None:
    # loop:// echoes the packet, then nothing: the read waits out its whole ~50 ms timeout.
    with SerialLink("loop://", 1_000_000) as link:
        delays = 0.046
        assert link.read_timeout_s(len(PING) + 20, delays) == pytest.approx(0.046 + 31e-5 + 0.004)
        reply, cpu_s, wall_s = _cpu_and_wall(lambda: link.transact(PING, 20, delays))
    assert reply == PING
    assert wall_s >= 0.045
    assert cpu_s < 0.010, f"{cpu_s * 1e3:.1f} ms of CPU while waiting {wall_s * 1e3:.1f} ms"


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


@needs_pty
def test_waiting_on_a_silent_tty_does_not_burn_cpu(pty: tuple[int, str]) -> None:
    master, path = pty
    with SerialLink(path, 1_000_000) as link:
        reply, cpu_s, wall_s = _cpu_and_wall(lambda: link.transact(PING, 20, 0.046))
    assert reply == b""
    assert os.read(master, 100) == PING
    assert wall_s >= 0.045
    assert cpu_s < 0.010, f"{cpu_s * 1e3:.1f} ms of CPU while waiting {wall_s * 1e3:.1f} ms"


@needs_pty
def test_a_servo_answering_on_a_tty(pty: tuple[int, str]) -> None:
    master, path = pty

    def servo() -> None:
        request = b""
        while len(request) < len(PING):
            request += os.read(master, len(PING) - len(request))
        if request == PING:
            os.write(master, STATUS)

    with SerialLink(path, 1_000_000, margin_s=0.5) as link:
        answering = threading.Thread(target=servo, daemon=True)
        answering.start()
        os.write(master, b"stale")
        time.sleep(0.01)  # let the stale bytes arrive before the transaction clears them
        assert link.transact(PING, len(STATUS)) == STATUS
        answering.join(timeout=1.0)


@needs_pty
def test_unplugging_a_tty_is_a_lost_port() -> None:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    try:
        link = SerialLink(path, 1_000_000)
        os.close(master)  # the far end goes away: the slave reports EIO
        with pytest.raises(BusError, match=rf"serial port {path} was lost: Input/output error"):
            link.transact(PING, len(STATUS))
        with pytest.raises(BusError, match=rf"serial port {path} is closed"):
            link.transact(PING, len(STATUS))
        link.close()
    finally:
        os.close(slave)
