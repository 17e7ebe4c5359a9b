"""What a run records as it goes: telemetry samples and events, in memory or streamed to disk.

Telemetry recorders (any replica, in any order) hand their samples to a :class:`RunLog`. Samples
wait in a small buffer until the clock is `REORDER_S` past them, so that samples of several
replicas, or redelivered ones, come out once and in time order; then they are final. A final
sample updates the tracking statistics (so the metrics need no list of samples) and is either
kept in compact columns (a run without a directory) or appended to ``telemetry.csv``. Events
(alarms, halts, signals, shadow alarms) go to ``events.jsonl`` the same way. The files are
flushed to the operating system at least every `FLUSH_EVERY_S` of wall time, so a process that
is killed leaves readable files behind; which samples are final depends only on the run's own
clock, so the files' contents stay deterministic.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import time
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from twin.observe.telemetry import Telemetry, csv_row

__all__ = ["FLUSH_EVERY_S", "REORDER_S", "RunLog", "TrackingStats"]

REORDER_S = 0.5
"""Simulated seconds a sample may arrive late and still be written in time order (one arriving
later is written where it arrives and counted in `late_samples`); also how far the telemetry on
disk trails the run."""
FLUSH_EVERY_S = 0.5
"""Wall-clock seconds between flushes of the streamed files."""
_RECENT = 4096  # final sample times remembered to recognise a very late duplicate


@dataclass
class TrackingStats:
    """Running tracking-error statistics per joint (rad), from the final samples. A joint whose
    reading is NaN (its servo failed: nothing measured) does not count in that sample."""

    joints: int
    samples: int = 0
    counts: list[int] = field(default_factory=list)
    sum_sq: list[float] = field(default_factory=list)
    max_abs: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.counts = [0] * self.joints
        self.sum_sq = [0.0] * self.joints
        self.max_abs = [0.0] * self.joints

    def add(self, goal: Sequence[float], actual: Sequence[float]) -> None:
        self.samples += 1
        for k in range(self.joints):
            e = goal[k] - actual[k]
            if e != e:  # NaN: not measured
                continue
            self.counts[k] += 1
            self.sum_sq[k] += e * e
            if abs(e) > self.max_abs[k]:
                self.max_abs[k] = abs(e)


class RunLog:
    """Telemetry and events of one run, in memory until `attach` streams them to a directory."""

    def __init__(
        self,
        joints: Sequence[str],
        directory: Path | None = None,
        *,
        wall_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.joints = list(joints)
        self.header = Telemetry(self.joints).header()
        self.directory: Path | None = None
        self.tracking = TrackingStats(len(self.joints))
        self.late_samples = 0  # written after later ones: they arrived more than REORDER_S late
        self.duplicates = 0
        self.events: list[dict[str, Any]] = []  # kept: a run has few (alarms, halts, signals)
        self._pending: dict[float, tuple[tuple[float, ...], tuple[float, ...]]] = {}
        self._pending_times: list[float] = []
        self._recent: deque[float] = deque(maxlen=_RECENT)
        self._recent_set: set[float] = set()
        self._last_final = -math.inf
        self._rows = array("d")  # in memory: t, goal, actual per joint, ..., row after row
        self._wall = wall_clock
        self._last_flush = wall_clock()
        self._on_flush: Callable[[], None] | None = None
        self._telemetry_file: IO[str] | None = None
        self._events_file: IO[str] | None = None
        if directory is not None:
            self.attach(directory)

    def attach(self, directory: Path, on_flush: Callable[[], None] | None = None) -> None:
        """Stream to `directory` from now on, which must be before anything is recorded;
        `on_flush` runs after each flush (the manifest's progress)."""
        if self.tracking.samples or self._pending or self.events:
            raise ValueError("attach the run log to its directory before the run starts")
        self.directory = directory
        self._on_flush = on_flush
        self._telemetry_file = (directory / "telemetry.csv").open("w", encoding="utf-8", newline="\n")
        self._telemetry_file.write(",".join(self.header) + "\n")
        self._events_file = (directory / "events.jsonl").open("w", encoding="utf-8", newline="\n")
        self.flush()

    # -- recording ------------------------------------------------------------------------------
    def sample(self, t: float, goal: Sequence[float], actual: Sequence[float]) -> None:
        """One joint-state sample at `t` (s); a duplicate of a recorded time counts once."""
        if t in self._pending or t in self._recent_set:
            self.duplicates += 1
            return
        if t <= self._last_final:  # far too late for its place: written where it arrives
            self.late_samples += 1
            self._final(t, tuple(goal), tuple(actual))
        else:
            self._pending[t] = (tuple(goal), tuple(actual))
            bisect.insort(self._pending_times, t)
        self.advance(t)

    def event(self, t: float, kind: str, **fields: Any) -> None:
        """An event worth reading after the run (and after a crash): written at once."""
        record = {"t_s": round(t, 6), "kind": kind, **fields}
        self.events.append(record)
        if self._events_file is not None:
            self._events_file.write(json.dumps(record, sort_keys=True) + "\n")
        self._maybe_flush()

    def advance(self, now: float) -> None:
        """The clock reached `now`: samples older than REORDER_S become final."""
        horizon = now - REORDER_S
        times = self._pending_times
        n = bisect.bisect_left(times, horizon)
        if n:
            for t in times[:n]:
                goal, actual = self._pending.pop(t)
                self._final(t, goal, actual)
            del times[:n]
        self._maybe_flush()

    def finish(self) -> None:
        """Everything pending becomes final and goes to disk (the end of a run, or its stop)."""
        for t in self._pending_times:
            goal, actual = self._pending.pop(t)
            self._final(t, goal, actual)
        self._pending_times.clear()
        self.flush(durable=True)

    def close(self) -> None:
        try:
            self.finish()
        finally:
            for fh in (self._telemetry_file, self._events_file):
                if fh is not None:
                    fh.close()
            self._telemetry_file = self._events_file = None

    def flush(self, durable: bool = False) -> None:
        """Hand what was written to the operating system, which keeps it if the process is
        killed; `durable` also waits for the disk (power loss), which a control loop must not
        do every half second."""
        for fh in (self._telemetry_file, self._events_file):
            if fh is not None:
                fh.flush()
                if durable:
                    os.fsync(fh.fileno())
        self._last_flush = self._wall()
        if self._on_flush is not None:
            self._on_flush()

    # -- reading back -----------------------------------------------------------------------------
    def telemetry(self) -> Telemetry:
        """The final samples in time order (read back from telemetry.csv when streamed)."""
        if self.directory is not None:
            t, goal, actual = Telemetry.from_csv(self.directory / "telemetry.csv").arrays()
        else:
            width = 1 + 2 * len(self.joints)
            rows = np.frombuffer(self._rows, dtype=np.float64).reshape(-1, width)  # copied below
            t = rows[:, 0].copy()
            goal, actual = rows[:, 1::2].copy(), rows[:, 2::2].copy()
            del rows  # a live view would stop the array from growing
        if self.late_samples:  # the very late ones were written where they arrived
            order = np.argsort(t, kind="stable")
            t, goal, actual = t[order], goal[order], actual[order]
        return Telemetry.from_arrays(self.joints, t, goal, actual)

    # -- internals --------------------------------------------------------------------------------
    def _final(self, t: float, goal: tuple[float, ...], actual: tuple[float, ...]) -> None:
        self._last_final = max(self._last_final, t)
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(t)
        self._recent_set.add(t)
        self.tracking.add(goal, actual)
        values = [t]
        for g, a in zip(goal, actual, strict=True):
            values += (g, a)
        if self._telemetry_file is not None:
            self._telemetry_file.write(csv_row(values))
        else:
            self._rows.extend(values)

    def _maybe_flush(self) -> None:
        if self._wall() - self._last_flush >= FLUSH_EVERY_S:
            self.flush()
