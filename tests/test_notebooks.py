"""Every notebook runs top to bottom in a real Jupyter kernel, its figures render as images,
and what it claims holds (checked by a cell the test appends)."""

from __future__ import annotations

import json
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))

# Run in the kernel after the notebook's own cells: assertions on what the notebook computed.
CHECKS = {
    "quickstart.ipynb": """
assert result.passed
assert len(p99) == len(medians_ms)
assert p99[-1] > p99[0], "more link latency, more command latency"
""",
    "identify_servo.ipynb": """
assert after.mae_rad < before.mae_rad, "the fitted model predicts the held-out recording better"
assert held_out.name not in fit.train_mae_rad, "the judged recording was not fitted on"
""",
}
CHECKS["breaker_study.ipynb"] = """
assert result.counts["error"] == 0 and len(result.rows) == 2
low, high = sorted(result.rows, key=lambda r: r["topology.calls.0.breaker.slow_call_ms"])
assert low["breakers.gateway_to_planner_0.opened"] >= 1 and high["breakers.gateway_to_planner_0.opened"] == 0
assert low["calls.operator_to_gateway.latency.p99_ms"] < high["calls.operator_to_gateway.latency.p99_ms"]
"""
CHECKS["latency_budget.ipynb"] = """
assert result.counts["error"] == 0 and len(result.rows) == 4
link = "topology.links.0.latency."
p99 = {(r[link + "median_ms"], r[link + "sigma"]): r["latency.command.p99_ms"] for r in result.rows}
assert p99[(40, 0.2)] > p99[(1, 0.2)] and p99[(40, 0.8)] >= p99[(40, 0.2)]
"""
FIGURES = {
    "quickstart.ipynb": 2,
    "identify_servo.ipynb": 1,
    "breaker_study.ipynb": 1,
    "latency_budget.ipynb": 1,
}
"""How many images each notebook shows at least (a figure that prints as text has failed)."""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_a_kernel(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(CHECKS[path.name]))
    monkeypatch.setenv("SERVOTWIN_QUICK", "1")  # the kernel inherits it: the studies run small
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if one fails
    images = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert len(images) >= FIGURES[path.name], f"{path.name}: figures shown as text, not images"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(path: Path) -> None:
    notebook = json.loads(path.read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)


def test_every_notebook_has_its_checks() -> None:
    assert NOTEBOOKS and {p.name for p in NOTEBOOKS} == set(CHECKS) == set(FIGURES)
