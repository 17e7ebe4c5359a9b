"""`twin compare RUN_DIR RUN_DIR…`: what changed between runs.

A sweep's rows compare the same way: `SWEEP_DIR` stands for every row of a `twin sweep`
directory, `SWEEP_DIR#N` (or `#N,M,...`) for rows of its results.csv, numbered from 1.

The first run is the baseline. The comparison has a header line per run (status, verdict,
seed, scenario), the assertions whose verdict changed (same expression, different outcome),
the numeric metrics side by side with each run's difference and relative change from the
baseline, and, with ``--out DIR``, ``DIR/compare.md`` and an overlay of the runs' joint
tracking, ``DIR/compare_tracking.png``.

    from twin.compare import compare
    c = compare(["runs/a", "runs/b"])
    text = c.to_text(pattern="tracking.*")  # the aligned table the CLI prints
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from servo_core.errors import ConfigError, TwinError
from twin.observe.metrics import flatten
from twin.observe.rundir import read_manifest

__all__ = [
    "AssertionChange",
    "Comparison",
    "MetricRow",
    "Run",
    "add_parser",
    "compare",
    "main",
]

MARKDOWN = "compare.md"
PLOT = "compare_tracking.png"

Number = int | float


@dataclass(frozen=True)
class Run:
    """One run directory as the comparison reads it."""

    path: Path
    manifest: dict[str, Any]
    metrics: dict[str, Number | None]
    """Numeric metrics by dotted path (None: the run measured nothing there)."""

    @property
    def scenario(self) -> str:
        return str(self.manifest.get("scenario", "?"))

    def header(self, index: int) -> str:
        role = "baseline" if index == 0 else f"run {index + 1}"
        m = self.manifest
        verdict = m.get("verdict") or "-"
        overrides = m.get("overrides")
        settings = f", {' '.join(overrides)}" if overrides else ""
        return (
            f"{role}: {self.path}  scenario {self.scenario}, seed {m.get('seed', '?')}{settings}, "
            f"{m.get('status', '?')}, {verdict}"
        )


@dataclass(frozen=True)
class MetricRow:
    """One metric across the runs; `values[0]` is the baseline's."""

    path: str
    values: tuple[Number | None, ...]

    @property
    def differences(self) -> tuple[Number | None, ...]:
        """value − baseline for each run after the first (None where either is missing)."""
        base = self.values[0]
        return tuple(None if v is None or base is None else v - base for v in self.values[1:])

    @property
    def relative(self) -> tuple[float | None, ...]:
        """(value − baseline) / |baseline| for each run after the first (None: undefined)."""
        base = self.values[0]
        out: list[float | None] = []
        for d in self.differences:
            if d is None or base is None or not math.isfinite(base):
                out.append(None)
            elif d == 0:
                out.append(0.0)
            elif base == 0:
                out.append(None)
            else:
                out.append(d / abs(base))
        return tuple(out)

    @property
    def differs(self) -> bool:
        base = self.values[0]
        return any(not _same(base, v) for v in self.values[1:])


def _same(a: Number | None, b: Number | None) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


@dataclass(frozen=True)
class AssertionChange:
    """One assertion across the runs: passed and measured per run (None where it is absent)."""

    expression: str
    passed: tuple[bool | None, ...]
    measured: tuple[float | None, ...]

    @property
    def changed(self) -> bool:
        """Whether runs that have it disagree on its verdict."""
        return len({p for p in self.passed if p is not None}) > 1

    @property
    def everywhere(self) -> bool:
        return all(p is not None for p in self.passed)

    def describe(self, labels: Sequence[str]) -> str:
        parts = []
        for label, passed, measured in zip(labels, self.passed, self.measured, strict=True):
            if passed is None:
                parts.append(f"{label} absent")
            else:
                value = "" if measured is None else f" ({_fmt(measured)})"
                parts.append(f"{label} {'PASS' if passed else 'FAIL'}{value}")
        return f"{self.expression}: " + ", ".join(parts)


@dataclass
class Comparison:
    """Runs compared with the first: metrics, assertions and header lines."""

    runs: list[Run]
    rows: list[MetricRow]
    """Every numeric metric of any run, sorted by path."""
    assertions: list[AssertionChange] = field(default_factory=list)
    """Every assertion of any run, in the order the runs list them."""

    @property
    def labels(self) -> list[str]:
        return ["baseline"] + [f"run {i + 1}" for i in range(1, len(self.runs))]

    @property
    def verdict_changes(self) -> list[AssertionChange]:
        """Assertions whose verdict differs between the runs that have them."""
        return [a for a in self.assertions if a.changed]

    @property
    def unmatched_assertions(self) -> list[AssertionChange]:
        """Assertions only some of the runs have."""
        return [a for a in self.assertions if not a.everywhere]

    @property
    def same_scenario(self) -> bool:
        return len({r.scenario for r in self.runs}) == 1

    def notes(self) -> list[str]:
        if not self.same_scenario:
            names = ", ".join(dict.fromkeys(r.scenario for r in self.runs))
            return [f"different scenarios ({names}): metrics are matched by path"]
        hashes = {r.manifest.get("scenario_sha256") for r in self.runs}
        if len(hashes) > 1:
            return [f"scenario {self.runs[0].scenario} with different settings (--set or edits)"]
        return []

    def headers(self) -> list[str]:
        return [run.header(i) for i, run in enumerate(self.runs)]

    def select(self, pattern: str | Sequence[str] | None = None, all_rows: bool = False) -> list[MetricRow]:
        """The rows to show: those that differ (every row with `all_rows`), matching a glob
        `pattern` (or any of several) on the dotted path when one is given."""
        patterns = [pattern] if isinstance(pattern, str) else list(pattern or [])
        return [
            r
            for r in self.rows
            if (all_rows or r.differs)
            and (not patterns or any(fnmatch.fnmatchcase(r.path, p) for p in patterns))
        ]

    def _columns(self) -> list[str]:
        cols = ["metric", "baseline"]
        for label in self.labels[1:]:
            cols += [label, "diff", "rel"]
        return cols

    def _cells(self, row: MetricRow) -> list[str]:
        cells = [row.path, _fmt(row.values[0])]
        for v, d, r in zip(row.values[1:], row.differences, row.relative, strict=True):
            cells += [_fmt(v), _fmt(d, signed=True), _pct(r, d)]
        return cells

    def to_text(self, pattern: str | Sequence[str] | None = None, all_rows: bool = False) -> str:
        """The comparison for a terminal: aligned columns."""
        lines = self.headers() + [f"note: {n}" for n in self.notes()]
        lines += self._assertion_lines()
        rows = self.select(pattern, all_rows)
        lines.append("")
        if not rows:
            lines.append(_no_rows(pattern, all_rows))
            return "\n".join(lines) + "\n"
        table = [self._columns()] + [self._cells(r) for r in rows]
        widths = [max(len(line[c]) for line in table) for c in range(len(table[0]))]
        for k, line in enumerate(table):
            cells = [
                cell.ljust(w) if c == 0 else cell.rjust(w)
                for c, (cell, w) in enumerate(zip(line, widths, strict=True))
            ]
            lines.append("  ".join(cells).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines) + "\n"

    def to_markdown(
        self, pattern: str | Sequence[str] | None = None, all_rows: bool = False, plot: str | None = None
    ) -> str:
        """The comparison as a markdown document (`plot`: an image file name to show)."""
        lines = ["# Run comparison", ""]
        lines += [f"- {_md(h)}" for h in self.headers()]
        lines += [f"- **note:** {_md(n)}" for n in self.notes()]
        lines += ["", "## Assertions", ""]
        changes, unmatched = self.verdict_changes, self._unmatched_only()
        if changes:
            lines += ["Changed verdict:", ""] + [f"- {_md(a.describe(self.labels))}" for a in changes]
        else:
            lines.append("No assertion changed verdict.")
        if unmatched:
            lines += ["", "Not in every run:", ""] + [f"- {_md(a.describe(self.labels))}" for a in unmatched]
        lines += ["", "## Metrics", ""]
        rows = self.select(pattern, all_rows)
        if rows:
            cols = self._columns()
            lines.append("| " + " | ".join(_md(c) for c in cols) + " |")
            lines.append("| --- | " + " | ".join("---:" for _ in cols[1:]) + " |")
            lines += ["| " + " | ".join(_md(c) for c in self._cells(r)) + " |" for r in rows]
        else:
            lines.append(_no_rows(pattern, all_rows))
        if plot:
            lines += ["", "## Tracking", "", f"![joint tracking]({plot})"]
        return "\n".join(lines) + "\n"

    def _unmatched_only(self) -> list[AssertionChange]:
        return [a for a in self.unmatched_assertions if not a.changed]

    def _assertion_lines(self) -> list[str]:
        changes = self.verdict_changes
        lines = ["assertions that changed verdict:" if changes else "no assertion changed verdict"]
        lines += [f"  {a.describe(self.labels)}" for a in changes]
        unmatched = self._unmatched_only()
        if unmatched:
            lines.append("assertions not in every run:")
            lines += [f"  {a.describe(self.labels)}" for a in unmatched]
        return lines


def _no_rows(pattern: str | Sequence[str] | None, all_rows: bool) -> str:
    what = "no numeric metrics" if all_rows else "no numeric metric differs"
    if pattern:
        shown = pattern if isinstance(pattern, str) else ", ".join(pattern)
        what += f" matching {shown}"
    return what


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _fmt(value: Number | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:+d}" if signed else str(value)
    return f"{value:+.6g}" if signed else f"{value:.6g}"


def _pct(rel: float | None, diff: Number | None) -> str:
    if rel is None:
        return "-" if diff is None or diff == 0 else "n/a"
    pct = rel * 100
    return f"{pct:+.0f}%" if abs(pct) >= 100 else f"{pct:+.3g}%"


def _numeric(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _read_run(path: Path) -> Run:
    if not path.exists():
        raise ConfigError(f"{path}: no such run directory")
    if not path.is_dir():
        raise ConfigError(f"{path}: not a run directory (not a folder)")
    manifest = read_manifest(path)
    file = path / "metrics.json"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no metrics.json (run {manifest.get('status')}); `twin report {path}` rebuilds it"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{file}: cannot read the metrics: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: not a metrics file (not a mapping)")
    metrics = {k: v for k, v in flatten(data).items() if _numeric(v)}
    return Run(path, manifest, metrics)


def _assertions(runs: Sequence[Run]) -> list[AssertionChange]:
    order: dict[str, None] = {}
    per_run: list[dict[str, dict[str, Any]]] = []
    for run in runs:
        found: dict[str, dict[str, Any]] = {}
        for a in run.manifest.get("assertions") or []:
            if isinstance(a, dict) and "expression" in a:
                found.setdefault(str(a["expression"]), a)
                order.setdefault(str(a["expression"]), None)
        per_run.append(found)
    out = []
    for expr in order:
        passed = tuple(None if expr not in f else bool(f[expr].get("passed")) for f in per_run)
        measured = tuple(
            f[expr].get("measured") if expr in f and _numeric(f[expr].get("measured")) else None
            for f in per_run
        )
        out.append(AssertionChange(expr, passed, measured))
    return out


def compare(dirs: Iterable[str | os.PathLike[str]]) -> Comparison:
    """Compare run directories (or a sweep's rows: `SWEEP_DIR`, `SWEEP_DIR#N`), the first being
    the baseline. ConfigError naming a folder that is neither (or fewer than two runs)."""
    from twin.compare_sweep import is_sweep_reference, read_sweep_runs

    runs: list[Run] = []
    for d in dirs:
        reference = os.fspath(d)
        if is_sweep_reference(reference):
            runs.extend(Run(*row) for row in read_sweep_runs(reference))
        else:
            runs.append(_read_run(Path(d)))
    if len(runs) < 2:
        raise ConfigError("twin compare needs at least two runs (run directories or sweep rows)")
    names = sorted(set().union(*(r.metrics for r in runs)))
    rows = [MetricRow(name, tuple(r.metrics.get(name) for r in runs)) for name in names]
    return Comparison(runs, rows, _assertions(runs))


def write_outputs(
    comparison: Comparison,
    out_dir: Path,
    pattern: str | Sequence[str] | None = None,
    all_rows: bool = False,
) -> tuple[Path, Path, list[str]]:
    """Write compare.md and compare_tracking.png into `out_dir`; returns their paths and notes
    on what the plot left out."""
    from twin.observe.compare_plot import common_joints, plot_compare_tracking
    from twin.observe.files import write_text_atomic
    from twin.observe.rundir import check_writable
    from twin.observe.telemetry import Telemetry

    check_writable(out_dir)
    notes: list[str] = []
    series: list[tuple[str, Telemetry]] = []
    for label, run in zip(comparison.labels, comparison.runs, strict=True):
        file = run.path / "telemetry.csv"
        if run.manifest.get("sweep_row"):
            notes.append(
                f"{run.path}: a sweep row keeps no telemetry, left out of the plot (`twin run` with its "
                f"--seed and --set values runs it again)"
            )
            continue
        if not file.exists():
            notes.append(f"{run.path}: no telemetry.csv, left out of the plot")
            continue
        series.append((f"{label} ({run.path.name})", Telemetry.from_csv(file)))
    _, skipped = common_joints([tel for _, tel in series])
    if skipped:
        notes.append(f"joints not in every run, left out of the plot: {', '.join(skipped)}")
    title = " vs ".join(dict.fromkeys(r.scenario for r in comparison.runs))
    plot = plot_compare_tracking(series, out_dir / PLOT, title)
    text = comparison.to_markdown(pattern, all_rows, plot=PLOT)
    if notes:
        text += "\n" + "\n".join(f"- {_md(n)}" for n in notes) + "\n"
    md = out_dir / MARKDOWN
    write_text_atomic(md, text)
    return md, plot, notes


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `compare` command to an argparse subparsers object; returns its parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "compare",
        help="compare run directories: metrics side by side, changed verdicts, tracking overlay",
        description="Compare run directories with the first (the baseline).",
    )
    p.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN_DIR",
        help="run directories, baseline first; a sweep's rows: SWEEP_DIR (all) or SWEEP_DIR#N[,M...]",
    )
    p.add_argument(
        "--all", action="store_true", dest="all_rows", help="every numeric metric, not only those that differ"
    )
    p.add_argument(
        "--metrics",
        action="append",
        metavar="PATTERN",
        help="only metrics whose dotted path matches this glob (e.g. 'tracking.*'); may be repeated",
    )
    p.add_argument("--out", type=Path, metavar="DIR", help=f"write DIR/{MARKDOWN} and DIR/{PLOT}")
    return p


def main(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run `twin compare`: 0, or 2 for bad input (a folder that is not a run directory)."""
    try:
        comparison = compare(args.run_dirs)
        pattern = getattr(args, "metrics", None)
        all_rows = bool(getattr(args, "all_rows", False))
        out.write(comparison.to_text(pattern, all_rows))
        if getattr(args, "out", None) is not None:
            md, plot, notes = write_outputs(comparison, args.out, pattern, all_rows)
            for note in notes:
                err.write(f"note: {note}\n")
            out.write(f"\nwrote {md} and {plot}\n")
    except TwinError as exc:
        err.write(f"twin compare: {exc}\n")
        return 2
    return 0
