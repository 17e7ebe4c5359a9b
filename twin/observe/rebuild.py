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
from twin.observe.report import AssertionOutcome, write_report
from twin.observe.rundir import RunDirectory, read_manifest
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
    """Rebuild report.md (and the tracking plots) of the run directory `path`."""
    manifest = read_manifest(path)
    telemetry = _telemetry(path)
    t, goal, actual = telemetry.arrays()
    reached = float(t[-1]) if len(t) else 0.0
    if manifest["status"] == "running":
        manifest["status"] = "incomplete"
        manifest["verdict"] = "INCOMPLETE"
        manifest["t_reached_s"] = round(max(reached, float(manifest.get("t_reached_s") or 0.0)), 6)
        manifest["reason"] = (
            f"the run's process ended without finishing (killed?) at {manifest['t_reached_s']:g} s "
            f"of {manifest.get('duration_s', math.nan):g} s; rebuilt by twin report"
        )
        RunDirectory(path, manifest).write_manifest()
    metrics_file = path / "metrics.json"
    if manifest["status"] == "complete" or (metrics_file.exists() and manifest["status"] != "running"):
        try:
            metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            metrics = _from_telemetry(manifest, telemetry, reached)
    else:
        metrics = _from_telemetry(manifest, telemetry, reached)
    write_text_atomic(metrics_file, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    images: list[Path] = []
    if plots and len(t):
        from twin.observe import plots as draw

        name = str(manifest.get("scenario", path.name))
        images.append(draw.plot_tracking(telemetry, path / "tracking.png", name))
        images.append(draw.plot_tracking_error(telemetry, path / "tracking_error.png", name))
    extra = [
        path / f for f in ("metrics.json", "telemetry.csv", "events.jsonl", "run.json") if (path / f).exists()
    ]
    incomplete = (
        None if manifest["status"] == "complete" else str(manifest.get("reason") or manifest["status"])
    )
    assertions = [
        AssertionOutcome(a["expression"], math.nan if a["measured"] is None else a["measured"], a["passed"])
        for a in manifest.get("assertions") or []
    ]
    write_report(
        path,
        f"{manifest.get('scenario', path.name)} (seed {manifest.get('seed', '?')})",
        metrics,
        assertions,
        images,
        extra_files=extra,
        incomplete=incomplete,
    )
    return RebuiltRun(manifest, metrics, telemetry)


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
    n = stats.samples

    def deg(x: float) -> float:
        return round(math.degrees(x), 6)

    return {
        "scenario": manifest.get("scenario"),
        "seed": manifest.get("seed"),
        "duration_s": round(reached, 6),
        "tracking": {
            "samples": n,
            "rms_error_deg": deg(math.sqrt(sum(stats.sum_sq) / (n * len(telemetry.joints)))) if n else None,
            "max_error_deg": deg(max(stats.max_abs)) if n else None,
            "joints": {
                name: {
                    "rms_error_deg": deg(math.sqrt(stats.sum_sq[k] / n)) if n else None,
                    "max_error_deg": deg(stats.max_abs[k]) if n else None,
                }
                for k, name in enumerate(telemetry.joints)
            },
        },
    }
