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
    assert namespace["result"].passed
    assert len(namespace["p99"]) == len(namespace["medians_ms"])
    assert namespace["p99"][-1] > namespace["p99"][0], "more link latency, more command latency"


def test_there_is_a_notebook() -> None:
    assert NOTEBOOKS
