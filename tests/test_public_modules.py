"""Every public module says what it exports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(
    p.relative_to(ROOT).as_posix()
    for package in ("servo_core", "sim_models", "hw_adapters", "twin")
    for p in (ROOT / package).rglob("*.py")
    if not p.name.startswith("_") or p.name == "__init__.py"
)


@pytest.mark.parametrize("path", MODULES)
def test_public_module_declares_all(path: str) -> None:
    tree = ast.parse((ROOT / path).read_text())
    names = {
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(t, ast.Name)
    }
    assert "__all__" in names, f"{path} has no __all__"
