"""The human-readable ``report.md`` of a run.

The report is deterministic (no timestamps, no host names): two identical runs give
byte-identical reports. Every link in it is relative to the run directory, so the
directory can be moved or archived as a whole.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin.observe.files import write_text_atomic

__all__ = ["AssertionOutcome", "write_report", "REPORT_NAME"]

REPORT_NAME = "report.md"

_MISSING = object()


@dataclass(frozen=True)
class AssertionOutcome:
    """The result of one scenario assertion.

    ``expression`` is as written in the scenario (e.g. ``"tracking.max_error_deg < 2.0"``),
    ``measured`` the value of its left-hand side (in the metric's own unit), ``passed``
    whether it held.
    """

    expression: str
    measured: float
    passed: bool


def _lookup(metrics: Mapping[str, Any], dotted: str) -> Any:
    """Value at ``dotted`` (``"a.b.c"``) in nested ``metrics``, or a flat ``"a.b.c"`` key.

    Returns the module sentinel ``_MISSING`` when absent.
    """
    if dotted in metrics:
        return metrics[dotted]
    node: Any = metrics
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def _fmt(value: Any) -> str:
    """Format a number for a table cell: integers exactly, floats with 6 significant digits."""
    if value is _MISSING or value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}"
    try:
        return _fmt(float(value))  # NumPy scalars and the like
    except (TypeError, ValueError):
        return _cell(str(value))


def _cell(text: str) -> str:
    """Escape ``text`` for a Markdown table cell (pipes, newlines)."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """Markdown table lines; ``align`` holds one of ``l``/``r``/``c`` per column."""
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(marks[a] for a in align) + "|",
    ]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _rel_link(target: Path, run_dir: Path) -> str:
    """Link text for ``target`` relative to ``run_dir``: forward slashes, spaces escaped.

    An absolute ``target`` is made relative to ``run_dir``; a relative one that starts
    with a relative ``run_dir`` has that prefix removed; any other relative ``target`` is
    taken as already relative to ``run_dir``.
    """
    if target.is_absolute():
        rel = os.path.relpath(os.path.abspath(target), os.path.abspath(run_dir))
    elif not run_dir.is_absolute() and run_dir.parts and target.is_relative_to(run_dir):
        rel = str(target.relative_to(run_dir))
    else:
        rel = str(target)
    return Path(rel).as_posix().replace(" ", "%20")


def _key_figures(metrics: Mapping[str, Any]) -> list[list[str]]:
    """Rows of the key-figures table for the metrics present."""
    rows: list[list[str]] = []
    simple = [
        ("tracking.max_error_deg", "Max tracking error", "deg"),
        ("tracking.rms_error_deg", "RMS tracking error", "deg"),
        ("latency.command.p50_ms", "Command latency p50", "ms"),
        ("latency.command.p99_ms", "Command latency p99", "ms"),
        ("driver.deadline_misses", "Driver deadline misses", ""),
    ]
    for key, label, unit in simple:
        value = _lookup(metrics, key)
        if value is not _MISSING:
            rows.append([label, _fmt(value), unit, f"`{key}`"])
    completed = _lookup(metrics, "commands.completed")
    sent = _lookup(metrics, "commands.sent")
    if completed is not _MISSING and sent is not _MISSING:
        rows.append(
            [
                "Commands completed / sent",
                f"{_fmt(completed)} / {_fmt(sent)}",
                "",
                "`commands.completed` / `commands.sent`",
            ]
        )
    elif completed is not _MISSING:
        rows.append(["Commands completed", _fmt(completed), "", "`commands.completed`"])
    elif sent is not _MISSING:
        rows.append(["Commands sent", _fmt(sent), "", "`commands.sent`"])
    return rows


def write_report(
    run_dir: Path,
    title: str,
    metrics: Mapping[str, Any],
    assertions: Sequence[AssertionOutcome],
    images: Sequence[Path],
    extra_files: Sequence[Path] = (),
) -> Path:
    """Write ``run_dir/report.md`` and return its path.

    Sections, each omitted when it has nothing to show: title; one-line verdict (PASS
    when every assertion passed, else FAIL, with counts); assertions table; key figures
    (from ``metrics``, nested dicts or flat dotted keys, missing keys skipped); per-joint
    tracking (``metrics["tracking"]["joints"]``: joint → ``rms_error_deg``,
    ``max_error_deg``); per-link table (``metrics["links"]``: name → ``messages``,
    ``drops``, ``latency`` → ``p50_ms``/``p99_ms``/``max_ms``); embedded images and links
    to ``extra_files``, both relative to ``run_dir``. The file is written atomically.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    out: list[str] = [f"# {title.strip() or 'ServoTwin run'}", ""]

    n = len(assertions)
    n_failed = sum(1 for a in assertions if not a.passed)
    if n == 0:
        out.append("**Verdict: PASS** (no assertions)")
    elif n_failed == 0:
        out.append(f"**Verdict: PASS** ({n}/{n} assertions passed)")
    else:
        out.append(f"**Verdict: FAIL** ({n_failed} of {n} assertions failed)")
    out.append("")

    if assertions:
        out += ["## Assertions", ""]
        rows = [[f"`{_cell(a.expression)}`", _fmt(a.measured), "✓" if a.passed else "✗"] for a in assertions]
        out += _table(["Assertion", "Measured", "Result"], rows, "lrc")
        out.append("")

    key_rows = _key_figures(metrics)
    if key_rows:
        out += ["## Key figures", ""]
        out += _table(["Figure", "Value", "Unit", "Metric"], key_rows, "lrll")
        out.append("")

    joints = _lookup(metrics, "tracking.joints")
    if isinstance(joints, Mapping) and joints:
        out += ["## Tracking per joint", ""]
        rows = []
        for name, stats in joints.items():
            stats = stats if isinstance(stats, Mapping) else {}
            rows.append(
                [
                    _cell(str(name)),
                    _fmt(stats.get("rms_error_deg", _MISSING)),
                    _fmt(stats.get("max_error_deg", _MISSING)),
                ]
            )
        out += _table(["Joint", "RMS error (deg)", "Max error (deg)"], rows, "lrr")
        out.append("")

    links = _lookup(metrics, "links")
    if isinstance(links, Mapping) and links:
        out += ["## Links", ""]
        rows = []
        for name, stats in links.items():
            stats = stats if isinstance(stats, Mapping) else {}
            lat = stats.get("latency", {})
            lat = lat if isinstance(lat, Mapping) else {}
            rows.append(
                [
                    _cell(str(name)),
                    _fmt(stats.get("messages", _MISSING)),
                    _fmt(stats.get("drops", _MISSING)),
                    _fmt(lat.get("p50_ms", _MISSING)),
                    _fmt(lat.get("p99_ms", _MISSING)),
                    _fmt(lat.get("max_ms", _MISSING)),
                ]
            )
        out += _table(["Link", "Messages", "Drops", "p50 (ms)", "p99 (ms)", "max (ms)"], rows, "lrrrrr")
        out.append("")

    if images:
        out += ["## Plots", ""]
        for image in images:
            alt = Path(image).stem.replace("[", "(").replace("]", ")")
            out += [f"![{alt}]({_rel_link(Path(image), run_dir)})", ""]

    if extra_files:
        out += ["## Files", ""]
        for extra in extra_files:
            link = _rel_link(Path(extra), run_dir)
            out.append(f"- [{Path(extra).name}]({link})")
        out.append("")

    while out and out[-1] == "":
        out.pop()
    path = run_dir / REPORT_NAME
    write_text_atomic(path, "\n".join(out) + "\n")
    return path
