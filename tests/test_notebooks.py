"""Every notebook's code cells run top to bottom (without Jupyter)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(path.parent)
    notebook = json.loads(path.read_text())
    namespace: dict = {}
    for k, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            exec(compile(source, f"{path.name}[cell {k}]", "exec"), namespace)  # noqa: S102
    CHECKS[path.name](namespace)


def _quickstart(ns: dict) -> None:
    assert ns["result"].passed
    assert len(ns["p99"]) == len(ns["medians_ms"])
    assert ns["p99"][-1] > ns["p99"][0], "more link latency, more command latency"


def _identify_servo(ns: dict) -> None:
    assert ns["after"].mae_rad < ns["before"].mae_rad, (
        "the fitted model predicts the held-out recording better"
    )
    assert ns["held_out"].name not in ns["fit"].train_mae_rad, "the judged recording was not fitted on"


CHECKS = {"quickstart.ipynb": _quickstart, "identify_servo.ipynb": _identify_servo}


def test_every_notebook_has_its_checks() -> None:
    assert NOTEBOOKS and {p.name for p in NOTEBOOKS} == set(CHECKS)
