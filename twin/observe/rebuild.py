"""`twin report DIR`: rebuild a run directory's report, plots and metrics from what it recorded.

A run that ended normally has its metrics.json; the report and plots are drawn again from it
and telemetry.csv. A run whose process died (SIGKILL, power loss, a crash of the interpreter)
left run.json saying `running`, telemetry.csv up to its last flush and events.jsonl: the
tracking figures are computed from the telemetry, the run is marked `incomplete` with the
time it reached, and its report says so. Counters that lived only in the process's memory
(calls, breakers, links) cannot be recovered and are left out.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from servo_core.errors import ConfigError
from twin.observe.files import write_text_atomic
from twin.observe.metrics import tracking_metrics
from twin.observe.report import AssertionOutcome, write_report
from twin.observe.rundir import MANIFEST, RUN_FILES, RunDirectory, is_being_written, read_manifest
from twin.observe.runlog import TrackingStats
from twin.observe.telemetry import Telemetry

__all__ = ["RebuiltRun", "rebuild"]


class RebuiltRun:
    def __init__(self, manifest: dict[str, Any], metrics: dict[str, Any], telemetry: Telemetry) -> None:
        self.manifest = manifest
        self.metrics = metrics
        self.telemetry = telemetry

    @property
    def status(self) -> str:
        return str(self.manifest["status"])

    @property
    def reason(self) -> str:
        return str(self.manifest.get("reason", ""))


def rebuild(path: Path, plots: bool = True) -> RebuiltRun:
    """Rebuild report.md (and the plots it can) of the run directory `path`, which no live
    process may be writing."""
    manifest = read_manifest(path)
    if is_being_written(path):
        raise ConfigError(f"{path}: a run is still writing here; twin report rebuilds a run that has ended")
    telemetry = _telemetry(path)
    t, _, _ = telemetry.arrays()
    reached = float(t[-1]) if len(t) else 0.0
    died = manifest["status"] == "running"  # and nobody holds the lock: its process is gone
    if died:
        manifest["status"] = "incomplete"
        manifest["verdict"] = "INCOMPLETE"
        manifest["t_reached_s"] = round(max(reached, float(manifest.get("t_reached_s") or 0.0)), 6)
        manifest["reason"] = (
            f"the run's process ended without finishing (killed?) at {manifest['t_reached_s']:g} s "
            f"of {manifest.get('duration_s', math.nan):g} s; rebuilt by twin report"
        )
        RunDirectory(path, manifest).write_manifest()
    metrics = None if died else _metrics_file(path)
    if metrics is None:  # what the process kept in memory is lost: the telemetry is what is left
        metrics = _from_telemetry(manifest, telemetry, reached)
        write_text_atomic(path / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    name = str(manifest.get("scenario", path.name))
    if plots and len(t):
        from twin.observe import plots as draw

        draw.plot_tracking(telemetry, path / "tracking.png", name)
        draw.plot_tracking_error(telemetry, path / "tracking_error.png", name)
    images = [path / f for f in RUN_FILES if f.endswith((".png", ".gif")) and (path / f).exists()]
    extra = [path / f for f in (*RUN_FILES, MANIFEST) if f.endswith((".json", ".csv", ".jsonl"))]
    incomplete = (
        None if manifest["status"] == "complete" else str(manifest.get("reason") or manifest["status"])
    )
    assertions = [
        AssertionOutcome(a["expression"], math.nan if a["measured"] is None else a["measured"], a["passed"])
        for a in manifest.get("assertions") or []
    ]
    write_report(
        path,
        f"{name} (seed {manifest.get('seed', '?')})",
        metrics,
        assertions,
        images,
        extra_files=[f for f in extra if f.exists()],
        failures=[(str(a), str(b)) for a, b in manifest.get("service_failures") or []],
        incomplete=incomplete,
    )
    return RebuiltRun(manifest, metrics, telemetry)


def _metrics_file(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _telemetry(path: Path) -> Telemetry:
    file = path / "telemetry.csv"
    if not file.exists():
        raise ConfigError(f"{path}: no telemetry.csv to rebuild the report from")
    return Telemetry.from_csv(file)


def _from_telemetry(manifest: dict[str, Any], telemetry: Telemetry, reached: float) -> dict[str, Any]:
    _, goal, actual = telemetry.arrays()
    stats = TrackingStats(len(telemetry.joints))
    for g, a in zip(goal.tolist(), actual.tolist(), strict=True):
        stats.add(g, a)
    return {
        "scenario": manifest.get("scenario"),
        "seed": manifest.get("seed"),
        "duration_s": round(reached, 6),
        "tracking": tracking_metrics(telemetry.joints, stats),
    }
