"""A run directory written as the run goes, with a manifest saying how far it got.

``run.json`` is written first (status ``running``), rewritten at every flush of the streamed
files with the simulated time reached, and last with the final status: ``complete``,
``incomplete`` (cut short: a lost port, a signal, a halt by a failure policy) or ``failed``
(the run itself raised). Every rewrite is atomic, so a reader sees one whole manifest. The files
of an earlier run in the same directory are removed before the new run writes anything but the
manifest, so they can never pass for the new run's results; other files are left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servo_core.errors import ConfigError
from twin.observe.files import write_text_atomic

__all__ = [
    "LOCK",
    "MANIFEST",
    "RUN_FILES",
    "RunDirectory",
    "RunStatus",
    "check_writable",
    "is_being_written",
    "read_manifest",
]

MANIFEST = "run.json"
RUN_FILES = (
    "metrics.json",
    "report.md",
    "telemetry.csv",
    "events.jsonl",
    "trace.json",
    "shadow.csv",
    "tracking.png",
    "tracking_error.png",
    "latency.png",
    "topology.png",
    "breakers.png",
    "shadow.png",
    "robot.gif",
)
"""What a run writes into its directory (besides the manifest): what a new run replaces."""

RunStatus = str  # "running", "complete", "incomplete" or "failed"


def check_writable(path: Path) -> None:
    """Refuse, before a run starts, a run directory that cannot be made or written to."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path}: exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".twin-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot write there ({exc.strerror or exc})") from None


def scenario_hash(scenario: Any) -> str:
    """sha256 of the validated scenario (after --set), canonical JSON."""
    text = scenario.model_dump_json(round_trip=True)
    return hashlib.sha256(text.encode()).hexdigest()


LOCK = ".twin-run.lock"
"""Held (flock) by the process writing a run directory; the kernel lets go when it dies."""


def _lock(path: Path) -> int | None:
    """The lock's file descriptor, or None when another process holds it."""
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def is_being_written(path: Path) -> bool:
    """Whether a live process is writing the run directory `path` now."""
    if not (path / LOCK).exists():
        return False
    fd = _lock(path)
    if fd is None:
        return True
    os.close(fd)
    return False


@dataclass
class RunDirectory:
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    _lock_fd: int | None = None

    @classmethod
    def start(
        cls,
        path: Path,
        scenario: Any,
        seed: int,
        *,
        bus: str | None,
        command: Sequence[str] | None,
    ) -> RunDirectory:
        check_writable(path)
        fd = _lock(path)
        if fd is None:
            raise ConfigError(f"--out {path}: another run is writing there; give another --out")
        run = cls(
            path,
            {
                "status": "running",
                "reason": "",
                "verdict": None,
                "scenario": scenario.name,
                "scenario_sha256": scenario_hash(scenario),
                "seed": seed,
                "clock": "virtual" if bus is None else "wall",
                "bus": bus,
                "command": list(command) if command is not None else None,
                "duration_s": scenario.duration,
                "t_reached_s": 0.0,
            },
            fd,
        )
        run.write_manifest()
        for name in RUN_FILES:
            with contextlib.suppress(FileNotFoundError):
                (path / name).unlink()
        return run

    def progress(self, t_reached_s: float) -> None:
        self.manifest["t_reached_s"] = round(t_reached_s, 6)
        self.write_manifest(durable=False)

    def finish(
        self,
        status: RunStatus,
        reason: str,
        t_reached_s: float,
        verdict: str,
        assertions: Sequence[Any] = (),
        service_failures: Sequence[tuple[str, str]] = (),
    ) -> None:
        """The final manifest; `assertions` are AssertionOutcome-like (expression, measured, passed).
        Releases the directory for the next run."""
        self.manifest.update(status=status, reason=reason, verdict=verdict, t_reached_s=round(t_reached_s, 6))
        self.manifest["assertions"] = [
            {
                "expression": a.expression,
                "measured": None if a.measured != a.measured else a.measured,  # NaN: not measured
                "passed": bool(a.passed),
            }
            for a in assertions
        ]
        self.manifest["service_failures"] = [list(f) for f in service_failures]
        try:
            self.write_manifest()
        finally:
            self.release()

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def write_manifest(self, durable: bool = True) -> None:
        text = json.dumps(self.manifest, indent=2, sort_keys=True) + "\n"
        write_text_atomic(self.path / MANIFEST, text, durable=durable)


def read_manifest(path: Path) -> dict[str, Any]:
    """A run directory's manifest; ConfigError naming the file when it is missing or broken."""
    file = path / MANIFEST
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not a run directory (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{file}: cannot read the manifest: {exc}") from None
    if not isinstance(data, dict) or "status" not in data:
        raise ConfigError(f"{file}: not a run manifest (no status)")
    return data
