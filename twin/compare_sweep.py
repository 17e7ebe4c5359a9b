"""A sweep's rows as runs for `twin compare`: `SWEEP_DIR` (every row) or `SWEEP_DIR#N[,M...]`.

A sweep directory holds results.csv (one row per run, numbered from 1 in file order) and
sweep.json (what was swept, the scenario's assertions). Each selected row becomes what a
:class:`twin.compare.Run` holds: a label, a manifest whose assertion outcomes are the
scenario's assertions evaluated on the row's numbers (as the run itself evaluated them), and
those numbers as the metrics. A row whose run directory was kept (`twin sweep --keep-runs`)
is that directory, with its own manifest and telemetry.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from servo_core.errors import ConfigError
from twin.observe.rundir import read_manifest
from twin.scenario.assertions import Assertion
from twin.sweep import parse_cell

__all__ = ["RowRun", "is_sweep_reference", "read_sweep_runs"]

RowRun = tuple[Path, dict[str, Any], dict[str, int | float | None]]
"""A row as a run: its label (`SWEEP_DIR#N`), a manifest as run.json has it, its metrics."""

RESULTS, DEFINITION = "results.csv", "sweep.json"
_NOT_METRICS = ("status", "error", "run")  # the seed is a metric too, as in metrics.json


def _split(reference: str) -> tuple[Path, str | None]:
    folder, hash_mark, rows = reference.rpartition("#")
    return (Path(folder), rows) if hash_mark and folder else (Path(reference), None)


def is_sweep_reference(reference: str) -> bool:
    """Whether `reference` names a sweep (a folder with results.csv and no run.json), or rows of one."""
    folder, _ = _split(reference)
    return (folder / RESULTS).is_file() and not (folder / "run.json").exists()


def _selection(reference: str, rows: str | None, count: int) -> list[int]:
    if rows is None:
        return list(range(1, count + 1))
    picked = []
    for part in rows.split(","):
        if not part.strip().isdigit() or not 1 <= int(part) <= count:
            raise ConfigError(f"{reference}: {part.strip() or 'an empty row'} is not a row of 1..{count}")
        picked.append(int(part))
    return picked


def _number(text: str) -> int | float | None:
    value = parse_cell(text)
    return value if isinstance(value, int | float) else None


def read_sweep_runs(reference: str) -> list[RowRun]:
    """The rows `reference` names, as runs labelled `SWEEP_DIR#N`. ConfigError naming what is
    missing or which row does not exist."""
    folder, rows = _split(reference)
    try:
        definition = json.loads((folder / DEFINITION).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{folder}: no {DEFINITION} (a sweep from an older version?); run the sweep again"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{folder / DEFINITION}: cannot read it: {exc}") from None
    params = [*definition.get("grid", {}), *definition.get("random", {})]
    with open(folder / RESULTS, newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    runs: list[RowRun] = []
    for n in _selection(reference, rows, len(table)):
        raw = table[n - 1]
        metrics = {
            column: _number(text)
            for column, text in raw.items()
            if column not in params and column not in _NOT_METRICS and column is not None
        }
        overrides = [f"{p}={raw.get(p, '')}" for p in params]
        manifest: dict[str, Any] = {
            "scenario": definition.get("name", "?"),
            # rows with other overrides are other settings of the scenario
            "scenario_sha256": f"{definition.get('scenario_sha256')};{';'.join(overrides)}",
            "seed": raw.get("seed", "?"),
            "status": "error" if raw.get("status") == "error" else "complete",
            "verdict": {"passed": "PASS", "failed": "FAIL"}.get(raw.get("status", ""), "ERROR"),
            "overrides": overrides,
            "sweep_row": True,
        }
        if raw.get("status") != "error":
            manifest["assertions"] = [_outcome(a, metrics) for a in definition.get("assertions", [])]
        kept = folder / raw["run"] if raw.get("run") else None
        if kept is not None and (kept / "run.json").is_file():  # twin sweep --keep-runs: the real thing
            runs.append((kept, {**read_manifest(kept), "overrides": overrides}, metrics))
        else:
            runs.append((Path(f"{folder}#{n}"), manifest, metrics))
    return runs


def _outcome(spec: dict[str, Any], metrics: dict[str, int | float | None]) -> dict[str, Any]:
    assertion = Assertion(str(spec["path"]), str(spec["op"]), float(spec["bound"]))
    value = metrics.get(assertion.path)
    measured = math.nan if value is None else float(value)
    return {"expression": str(assertion), "measured": measured, "passed": assertion.holds(measured)}
