"""Control cycles per second on a Dynamixel bus: our DynamixelBus against the Dynamixel SDK, in one run.

Six emulated XL430-W250 servos (ids 1..6 on the arm6 robot) answer Protocol 2.0
on a pseudo-terminal, served by `python -m twin emulate` in a separate process,
so that the emulator's work never counts in the client's CPU time. One control
cycle is one sync read of the six servos' state and one sync write of six goal
positions:

  ours        bus.read_states(ids) + bus.write_goals(goals), through
              open_bus("dynamixel://LINK?baud=1000000&fail_after=1000000000").
              read_states always reads the whole state block 122..146 (25 bytes
              per servo) and decodes it to SI units.
  SDK 132/4   GroupSyncRead(port, ph, 132, 4) (Present Position only, getData
              per servo, converted to rad) + GroupSyncWrite(port, ph, 116, 4).
  SDK 122/25  the same, but the sync read covers the same 25-byte block as ours
              (122..146) and decodes the same fields (moving, load, velocity,
              position, voltage, temperature): the same bytes on the wire.

Every variant runs a fixed number of cycles, interleaved, best of N (the highest
cycles/s and the lowest CPU time per cycle, each over the repeats). CPU time is
time.process_time() in this process: the client's own CPU, nothing of the
emulator's. By default the emulator answers at once (wire timing off: a
pseudo-terminal has no baud rate), so the figures measure the clients and the
pty round trip; --wire-timing adds a second table with the emulator answering
when a 1 Mbps bus would (request bytes, each servo's return delay, reply
bytes), which bounds both clients by the simulated wire.

A sync read that fails (after the bus's own retries; the SDK has none) is counted
in "failed reads" and the cycle goes on; fail_after is raised so that such a servo
is never marked failed mid-benchmark. CPU/wall near 100 % means the client spins
while it waits (the SDK polls the port with timeout 0); a blocking client is far
below. On a machine with few cores, other load changes the ratios a lot.

    python bench/bus.py [--cycles 2000] [--repeats 3] [--wire-timing]
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import hw_adapters
from hw_adapters.dynamixel.bus import GOAL_POSITION, STATE_ADDR, STATE_LEN, TORQUE_ENABLE

IDS = [1, 2, 3, 4, 5, 6]
BAUD = 1_000_000
PRESENT_POSITION = 132
TWO_PI = 2.0 * math.pi
VELOCITY_UNIT = 0.229 * TWO_PI / 60.0  # rad/s per Present Velocity unit
WARMUP_CYCLES = 50
TARGET_SPEED, TARGET_CPU = 1.5, 0.5  # ours >= 1.5x the SDK's cycles/s at <= 0.5x its CPU per cycle

SCENARIO = """\
# Written by bench/bus.py: six Dynamixel XL430-W250 on the arm6 robot, for `twin emulate`.
name: bench_bus_dxl6
duration: 1.0
physics: {dt_s: 0.001}
plant:
  robot: {urdf: arm6}
  servos:
    - {id: 1, model: xl430-w250, joint: shoulder_pan}
    - {id: 2, model: xl430-w250, joint: shoulder_lift}
    - {id: 3, model: xl430-w250, joint: elbow_flex}
    - {id: 4, model: xl430-w250, joint: wrist_flex}
    - {id: 5, model: xl430-w250, joint: wrist_roll}
    - {id: 6, model: xl430-w250, joint: gripper}
task:
  type: waypoints
  poses: {zero: {shoulder_pan: 0}}
  steps: [{at_s: 0.0, pose: zero, duration_s: 0.5}]
"""


def goals() -> list[float]:
    """The goals now (rad): 0.3 rad sines at 0.5 Hz on the wall clock, one phase per servo.

    On the wall clock, so that the servos move alike whatever rate a client reaches (what
    they report, and so the bytes on the wire, depend on how they move).
    """
    t = time.perf_counter()
    return [0.3 * math.sin(math.pi * t + 0.7 * j) for j in range(len(IDS))]


def to_ticks(angle: float) -> int:
    """rad -> Goal Position ticks (0 rad = 2048), what an SDK user writes by hand."""
    return int(math.floor(angle * 4096 / TWO_PI + 0.5)) + 2048


def signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


# -- the emulator, in its own process ---------------------------------------------------------------


@contextmanager
def emulator(wire_timing: bool) -> Iterator[tuple[str, int]]:
    """Serve the six servos with `python -m twin emulate` in a subprocess; yield (link path, pid).

    The subprocess is stopped (SIGINT, then SIGKILL if it lingers) and the temporary
    directory removed whatever happens, Ctrl-C included.
    """
    with tempfile.TemporaryDirectory(prefix="bench-bus-") as tmp:
        scenario = Path(tmp) / "dxl6.yaml"
        scenario.write_text(SCENARIO)
        link = Path(tmp) / "dxl"
        cmd = [sys.executable, "-m", "twin", "emulate", str(scenario), "--protocol", "dynamixel"]
        cmd += ["--link", str(link), "--baud", str(BAUD)] + (["--wire-timing"] if wire_timing else [])
        with open(Path(tmp) / "emulator.log", "w+") as log:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
            try:
                _wait_ready(proc, link, log, 60.0)
                yield str(link), proc.pid
            finally:
                _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], link: Path, log: IO[str], timeout_s: float) -> None:
    """Wait for the link the emulator makes just before it serves (the pty buffers until then)."""
    deadline = time.monotonic() + timeout_s
    while not link.is_symlink():
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            log.seek(0)
            raise RuntimeError(f"the emulator did not start (exit {proc.returncode}):\n{log.read()}")
        time.sleep(0.02)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the clients --------------------------------------------------------------------------------------


class Ours:
    name = "ours (state 122/25)"

    def __init__(self, link: str) -> None:
        # fail_after: a servo whose reads keep failing must stay on the bus for the benchmark
        # (see `errors`); retries stay at their default (2).
        self.bus = hw_adapters.open_bus(f"dynamixel://{link}?baud={BAUD}&fail_after=1000000000")
        self.bus.set_torque(IDS, True)
        self.errors = 0

    def cycle(self) -> None:
        try:
            states = self.bus.read_states(IDS)
        except hw_adapters.BusError:
            self.errors += 1  # counted (after the bus's own retries), and the cycle goes on
        else:
            positions = [states[i].position for i in IDS]  # what a controller uses
            assert len(positions) == len(IDS)
        self.bus.write_goals(dict(zip(IDS, goals(), strict=True)))

    def close(self) -> None:
        self.bus.close()


class Sdk:
    """The Dynamixel SDK's sync read and sync write, used the way its examples do."""

    def __init__(self, port: object, ph: object, block: bool) -> None:
        import dynamixel_sdk as sdk

        self.sdk = sdk
        self.block = block
        self.name = "SDK (state 122/25)" if block else "SDK (position 132/4)"
        addr, length = (STATE_ADDR, STATE_LEN) if block else (PRESENT_POSITION, 4)
        self.read = sdk.GroupSyncRead(port, ph, addr, length)
        self.write = sdk.GroupSyncWrite(port, ph, GOAL_POSITION, 4)
        for i in IDS:
            if not self.read.addParam(i) or not self.write.addParam(i, bytes(4)):
                raise RuntimeError(f"SDK: cannot add servo {i} to the sync read/write")
        self.errors = 0

    def cycle(self) -> None:
        sdk, gsr = self.sdk, self.read
        if gsr.txRxPacket() != sdk.COMM_SUCCESS:
            self.errors += 1  # counted, and the cycle goes on
        elif self.block:  # the fields read_states decodes, decoded by hand
            states = [
                (
                    bool(gsr.getData(i, 122, 1)),
                    signed(gsr.getData(i, 126, 2), 16) / 1000.0,
                    signed(gsr.getData(i, 128, 4), 32) * VELOCITY_UNIT,
                    (signed(gsr.getData(i, 132, 4), 32) - 2048) * TWO_PI / 4096,
                    gsr.getData(i, 144, 2) / 10.0,
                    float(gsr.getData(i, 146, 1)),
                )
                for i in IDS
            ]
            positions = [s[3] for s in states]
            assert len(positions) == len(IDS)
        else:
            positions = [(signed(gsr.getData(i, 132, 4), 32) - 2048) * TWO_PI / 4096 for i in IDS]
            assert len(positions) == len(IDS)
        for i, g in zip(IDS, goals(), strict=True):
            self.write.changeParam(i, to_ticks(g).to_bytes(4, "little", signed=True))
        result = self.write.txPacket()
        if result != sdk.COMM_SUCCESS:
            raise RuntimeError(f"SDK sync write: {result}")


@contextmanager
def clients(link: str) -> Iterator[list]:
    import dynamixel_sdk as sdk

    ours = Ours(link)
    try:
        port = sdk.PortHandler(link)
        if not port.openPort() or not port.setBaudRate(BAUD):
            raise RuntimeError(f"SDK: cannot open {link}")
        try:
            ph = sdk.PacketHandler(2.0)
            for i in IDS:
                ph.write1ByteTxRx(port, i, TORQUE_ENABLE, 1)
            yield [ours, Sdk(port, ph, block=False), Sdk(port, ph, block=True)]
        finally:
            port.closePort()
    finally:
        ours.close()


# -- measuring ---------------------------------------------------------------------------------------


@dataclass
class Run:
    rate: float  # cycles/s
    cpu_s: float  # client CPU time per cycle
    busy: float  # client CPU time / wall time
    errors: int  # failed sync reads
    emulator_cpu_s: float | None  # the emulator process's CPU time per cycle (Linux), for context


def process_cpu_s(pid: int) -> float | None:
    """CPU time (user + system) of another process, from /proc (Linux); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def measure(client: Ours | Sdk, cycles: int, emulator_pid: int) -> Run:
    """Run `cycles` timed cycles of `client` after a short warm-up."""
    for _ in range(WARMUP_CYCLES):
        client.cycle()
    errors0 = client.errors
    emu0 = process_cpu_s(emulator_pid)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(cycles):
        client.cycle()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    emu1 = process_cpu_s(emulator_pid)
    emu = None if emu0 is None or emu1 is None else (emu1 - emu0) / cycles
    return Run(cycles / wall, cpu / cycles, cpu / wall, client.errors - errors0, emu)


def table(wire_timing: bool, cycles: int, repeats: int) -> None:
    with emulator(wire_timing) as (link, pid), clients(link) as variants:
        runs: dict[str, list[Run]] = {v.name: [] for v in variants}
        for _ in range(repeats):  # interleaved, so drift in machine load hits every variant
            for v in variants:
                runs[v.name].append(measure(v, cycles, pid))
    rate = {name: max(r.rate for r in rs) for name, rs in runs.items()}
    cpu = {name: min(r.cpu_s for r in rs) for name, rs in runs.items()}
    timing = (
        f"wire timing ON (the emulator answers when a {BAUD // 1000} kbps bus would)"
        if wire_timing
        else "wire timing OFF (the emulator answers at once: a pty has no baud rate)"
    )
    print(f"6 x XL430-W250 on a pty, emulator in its own process; {timing}")
    print(f"  one cycle = sync read of 6 + sync write of 6; {cycles} cycles per run, best of {repeats}")
    print(
        f"  {'client':<22}{'cycles/s':>10}{'CPU ms/cycle':>14}{'CPU/wall':>10}{'failed reads':>14}"
        f"{'emulator CPU ms/cycle':>23}"
    )
    for name, rs in runs.items():
        busy = max(r.busy for r in rs)
        errors = sum(r.errors for r in rs)
        emus = [r.emulator_cpu_s for r in rs if r.emulator_cpu_s is not None]
        emu = f"{min(emus) * 1e3:.3f}" if emus else "n/a"
        print(f"  {name:<22}{rate[name]:>10,.0f}{cpu[name] * 1e3:>14.3f}{busy:>10.0%}{errors:>14}{emu:>23}")
    ours = variants[0].name
    for sdk in (v.name for v in variants[1:]):
        speed, cost = rate[ours] / rate[sdk], cpu[ours] / cpu[sdk]
        holds = speed >= TARGET_SPEED and cost <= TARGET_CPU
        print(
            f"  ours / {sdk:<21} cycles {speed:5.2f}x  CPU {cost:5.2f}x  "
            f"target (>= {TARGET_SPEED}x cycles at <= {TARGET_CPU}x CPU): {'holds' if holds else 'NOT met'}"
        )
    print("  (ours always reads the whole state block 122..146, 25 bytes a servo, and decodes it to SI;")
    print("   CPU/wall is the highest over the runs; failed reads are summed over the timed runs;")
    print("   the emulator's CPU is its own process's, lowest over the runs, never in the client's)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=2000, help="timed cycles per run (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per variant (default 3)")
    parser.add_argument(
        "--wire-timing",
        action="store_true",
        help="also measure with the emulator answering when a 1 Mbps bus would (a second table)",
    )
    args = parser.parse_args()
    if args.cycles < 1 or args.repeats < 1:
        parser.error("--cycles and --repeats must be >= 1")
    try:
        table(False, args.cycles, args.repeats)
        if args.wire_timing:
            print()
            table(True, args.cycles, args.repeats)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
