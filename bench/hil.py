"""Hardware-in-the-loop figures on an emulated wire: loop rate, loop lateness, reply latency.

Six emulated XL430-W250 (ids 1..6 on the arm6 robot) answer Protocol 2.0 from
hw_adapters' EmulatorServer, the server `twin emulate` runs, with wire timing on
(a reply leaves when it would on a real bus of that baud rate), in a process of
its own started from this file (`--serve`), so that the bench stands on
hw_adapters and sim_models alone. Three measurements, printed as tables:

1. Control-loop rate at 1 Mbps and 4 Mbps: read_states(6) + write_goals(6)
   back to back through our DynamixelBus, with read=sync and read=fast (the
   full state block), against the wire limit: the bytes of the read request,
   its replies and the sync write (10 bits per byte) plus the return delays
   the emulator charges (every servo's for a sync read, the first servo's for
   a fast sync read). With the servos' factory return delay (500 us) and 0.
2. Lateness of a 1 kHz loop: a plain time.monotonic loop (not twin's
   WallClockEnvironment) that sleeps to each next millisecond, or to 0.1 ms
   before it and waits the rest awake; lateness = when a tick starts - its
   millisecond. Bare, with the thread's default scheduling and with prompt
   wake-ups (hw_adapters.realtime: short slice, 1 us timer slack), and doing
   one read=fast state=position cycle of the six servos per tick at 4 Mbps
   (return delay 0).
3. The emulator's reply latency: one ping transaction at 4 Mbps with return
   delay 0, minus its wire time; idle and with a busy-loop process on the other
   core, the client thread with default scheduling and with prompt wake-ups.

    python bench/hil.py [--seconds 1.5]      (about 30 s)
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from hw_adapters import BusError, open_bus
from hw_adapters.dynamixel import protocol as dxl
from hw_adapters.dynamixel.bus import RETURN_DELAY, DynamixelBus
from hw_adapters.realtime import prompt_wakeups
from servo_core.protocol import DYNAMIXEL, bytes_time

IDS = [1, 2, 3, 4, 5, 6]
BAUDS = (1_000_000, 4_000_000)
FACTORY_DELAY_US = 500  # e-Manual: Return Delay Time 250 x 2 us
TARGET_RATIO, TARGET_LATE_P99_S, TARGET_REPLY_P99_S = 0.9, 0.0003, 0.002
PERIOD_S = 0.001


# -- the emulator, in its own process ---------------------------------------------------------------


def serve(link: str, baud: int) -> None:
    """`--serve`: six XL430s on arm6, wire-timed at `baud`, until SIGINT or SIGTERM."""
    from hw_adapters.emulator import EmulatorServer
    from servo_core.catalogue import servo_spec
    from sim_models.plant import Mount, Plant
    from sim_models.robots import actuated_joints, robot_urdf_text
    from sim_models.servo.device import VirtualServo

    urdf = robot_urdf_text("arm6")
    spec = servo_spec("xl430-w250")
    mounts = [Mount(j, VirtualServo(spec, i)) for i, j in zip(IDS, actuated_joints(urdf), strict=True)]
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with Plant(urdf, mounts) as plant:
        server = EmulatorServer(plant, "dynamixel", baud=baud, wire_timing=True)
        try:
            server.link(link)
            server.serve(stop)
        finally:
            server.close()


@contextmanager
def emulator(baud: int) -> Iterator[str]:
    """A wire-timed emulator process at `baud`; yields the link to its pty."""
    with tempfile.TemporaryDirectory(prefix="bench-hil-") as tmp:
        link = Path(tmp) / "dxl"
        proc = subprocess.Popen([sys.executable, __file__, "--serve", str(link), str(baud)])
        try:
            deadline = time.monotonic() + 60.0
            while not link.is_symlink():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the emulator did not start (exit {proc.returncode})")
                time.sleep(0.02)
            yield str(link)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def busy_core() -> Iterator[None]:
    """A busy-loop process for the duration: on two cores, the other core is busy."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        yield
    finally:
        hog.kill()
        hog.wait()


@contextmanager
def _bus(link: str, baud: int, **options: str) -> Iterator[DynamixelBus]:
    query = "&".join(f"{k}={v}" for k, v in {"baud": baud, **options}.items())
    bus = open_bus(f"dynamixel://{link}?{query}")
    assert isinstance(bus, DynamixelBus)
    try:
        yield bus
    finally:
        bus.close()


def set_return_delay(link: str, baud: int, delay_us: int) -> None:
    """Return Delay Time (EEPROM, written with torque off) of every servo, checked by reading it back."""
    with _bus(link, baud) as bus:
        bus.set_torque(IDS, False)
        units = delay_us // 2
        bus.transaction(dxl.sync_write(RETURN_DELAY, 1, {i: bytes([units]) for i in IDS}), [])
        got = bus.transaction(dxl.sync_read(RETURN_DELAY, 1, IDS), [(i, 1) for i in IDS])
        if any(got[i].params[0] != units for i in IDS):
            raise RuntimeError(f"return delay not taken: {got}")


# -- 1. control-loop rate ---------------------------------------------------------------------------


def wire_cycle_s(read: str, baud: int, delay_s: float, length: int = DYNAMIXEL.state_length) -> float:
    """Wire time of one cycle: the read request, its replies, the sync write, and the return delays."""
    n, p = len(IDS), DYNAMIXEL
    request = p.instruction_size(p.sync_read_header + n)
    if read == "fast":
        replies, delays = dxl.fast_sync_read_reply_size(n, length), delay_s
    else:
        replies, delays = n * p.status_size(length), n * delay_s
    write = p.instruction_size(p.sync_write_header + n * (1 + p.goal.size))
    return bytes_time(request + replies + write, baud) + delays


def _goals(t: float) -> dict[int, float]:
    return {i: 0.3 * math.sin(math.pi * t + 0.7 * k) for k, i in enumerate(IDS)}


def control_rate(link: str, baud: int, read: str, seconds: float) -> tuple[float, int]:
    """Cycles per second of read_states + write_goals, back to back, for `seconds`; and failed reads.

    A read that fails after the bus's retries is counted and the cycle goes on (fail_after is
    raised so that no servo is marked failed mid-run).
    """
    with _bus(link, baud, read=read, fail_after="1000000000") as bus:
        bus.set_torque(IDS, True)
        cycles, failed, start = 0, 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            try:
                bus.read_states(IDS)
            except BusError:
                failed += 1
            bus.write_goals(_goals(elapsed))
            cycles += 1
        return cycles / (time.perf_counter() - start), failed


# -- 2. loop lateness, 3. reply latency -------------------------------------------------------------


def loop_lateness(seconds: float, work: Callable[[], None] | None, spin_s: float = 0.0) -> list[float]:
    """Lateness (s) of each tick of a 1 kHz loop on time.monotonic.

    Each tick sleeps until `spin_s` before the next millisecond, then waits the rest awake;
    lateness is the time it starts minus that millisecond. `work` runs once per tick.
    """
    late: list[float] = []
    next_t = time.monotonic()
    for _ in range(int(seconds / PERIOD_S)):
        next_t += PERIOD_S
        delay = next_t - spin_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        while time.monotonic() < next_t:
            pass
        late.append(time.monotonic() - next_t)
        if work is not None:
            work()
    return late


def reply_latency(bus: DynamixelBus, baud: int, count: int) -> list[float]:
    """Round trip of a ping beyond its wire time (s), `count` times; inf for a ping lost."""
    ping = dxl.ping(1)
    wire = bytes_time(len(ping) + DYNAMIXEL.status_size(DYNAMIXEL.ping_reply_params), baud)
    out = []
    for _ in range(count):
        start = time.perf_counter()
        try:
            bus.transaction(ping, [(1, DYNAMIXEL.ping_reply_params)], retries=0)
        except BusError:
            out.append(math.inf)
        else:
            out.append(time.perf_counter() - start - wire)
        time.sleep(0.0002)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(values: list[float]) -> str:
    return f"{pct(values, 0.5) * 1e3:7.3f} {pct(values, 0.99) * 1e3:7.3f} {max(values) * 1e3:7.3f}"


def _verdict(ok: bool) -> str:
    return "holds" if ok else "NOT met"


# -- the tables --------------------------------------------------------------------------------------


def rate_table(seconds: float) -> None:
    print("1. control-loop rate: read_states(6) + write_goals(6), state=full, emulator wire-timed")
    head = f"{'baud':>9} {'return delay':>12} {'read':>5} {'cycles/s':>9} {'wire limit':>10} {'ratio':>6}"
    print(f"   {head} {'failed reads':>12}")
    fast_1m = math.inf
    for baud in BAUDS:
        with emulator(baud) as link:
            for delay_us in (FACTORY_DELAY_US, 0):
                set_return_delay(link, baud, delay_us)
                for read in ("sync", "fast"):
                    rate, failed = control_rate(link, baud, read, seconds)
                    limit = 1.0 / wire_cycle_s(read, baud, delay_us * 1e-6)
                    row = f"{baud:>9,} {delay_us:>9} us {read:>5} {rate:>9,.0f} {limit:>10,.0f}"
                    print(f"   {row} {rate / limit:>6.2f} {failed:>12}")
                    if baud == BAUDS[0] and read == "fast":
                        fast_1m = min(fast_1m, rate / limit)
    verdict = _verdict(round(fast_1m, 2) >= TARGET_RATIO)
    print(f"   target: ratio >= {TARGET_RATIO} at 1 Mbps with read=fast (both delays): {verdict}")


LOOPS = (  # label, prompt wake-ups, spin before each tick (s), bus cycle in the tick
    ("bare, default thread", False, 0.0, False),
    ("bare, prompt wake-ups", True, 0.0, False),
    ("bare, prompt wake-ups + 0.1 ms awake", True, 0.0001, False),
    ("bus cycle, prompt wake-ups + 0.1 ms awake", True, 0.0001, True),
)


def lateness_table(link: str, baud: int, seconds: float) -> None:
    print("2. 1 kHz loop lateness (ms): a time.monotonic loop, each tick at the next millisecond")
    print("   (bus cycle: read=fast state=position of 6 + write of 6 goals, 4 Mbps, return delay 0)")
    print(f"   {'loop':<44}{'p50':>8}{'p99':>8}{'max':>8}")
    with _bus(link, baud, read="fast", state="position") as bus:
        bus.set_torque(IDS, True)

        def cycle() -> None:
            bus.read_states(IDS)
            bus.write_goals(_goals(time.monotonic()))

        p99: dict[str, float] = {}
        for label, prompt, spin_s, with_bus in LOOPS:
            guard: AbstractContextManager[object] = prompt_wakeups() if prompt else nullcontext()
            with guard:
                late = loop_lateness(seconds, cycle if with_bus else None, spin_s)
            p99[label] = pct(late, 0.99)
            print(f"   {label:<44}{_ms(late)}")
    best = min(v for k, v in p99.items() if k.startswith("bare"))
    verdict = _verdict(best <= TARGET_LATE_P99_S)
    print(f"   target: p99 <= {TARGET_LATE_P99_S * 1e3:g} ms idle (best bare loop): {verdict}")


def latency_table(link: str, baud: int, seconds: float) -> None:
    print("3. emulator reply latency (ms): a ping at 4 Mbps, round trip minus wire time")
    print(f"   {'machine':<11}{'client thread':<15}{'p50':>8}{'p99':>8}{'max':>8}{'lost':>6}")
    count = int(seconds / 0.0005)
    loaded_p99 = math.inf
    # A long timeout, so that a late reply is measured rather than lost.
    with _bus(link, baud, timeout_ms="100") as bus:
        bus.ping(1)
        for loaded in (False, True):
            with busy_core() if loaded else nullcontext():
                for prompt in (False, True):
                    guard: AbstractContextManager[object] = prompt_wakeups() if prompt else nullcontext()
                    with guard:
                        lat = reply_latency(bus, baud, count)
                    if loaded:
                        loaded_p99 = min(loaded_p99, pct(lat, 0.99))
                    lost = sum(math.isinf(x) for x in lat)
                    where = "busy core" if loaded else "idle"
                    client = "prompt" if prompt else "default"
                    print(f"   {where:<11}{client:<15}{_ms([x for x in lat if math.isfinite(x)])}{lost:>6}")
    ok = loaded_p99 <= TARGET_REPLY_P99_S
    print(
        f"   target: p99 <= {TARGET_REPLY_P99_S * 1e3:g} ms with the other core busy "
        f"(best client setting): {_verdict(ok)}"
    )


def timing_tables(seconds: float) -> None:
    baud = BAUDS[1]
    with emulator(baud) as link:
        set_return_delay(link, baud, 0)
        lateness_table(link, baud, seconds)
        latency_table(link, baud, seconds)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=1.5, help="length of each run (default 1.5)")
    args = parser.parse_args()
    print(f"bench/hil.py on {os.cpu_count()} cores, 6 x XL430-W250 emulated on a pty, wire timing on")
    started = time.monotonic()
    try:
        rate_table(args.seconds)
        timing_tables(args.seconds)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
