"""The one-way arrows between the packages, and no import cycles between modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("servo_core", "sim_models", "hw_adapters", "twin")
# hw_adapters may use the simulation only to serve sim:// and the emulator.
SIM_USERS = ("hw_adapters/sim.py", "hw_adapters/emulator/")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            mod = _module(path)
            graph[mod] = {m for m in _all_imports(ast.parse(path.read_text(), str(path)))}
    modules = set(graph)
    out = {}
    for mod, found in graph.items():
        targets = set()
        for module, names in found:
            submodules = {f"{module}.{n}" for n in names if f"{module}.{n}" in modules}
            targets |= submodules or ({module} if module in modules else set())
        out[mod] = {t for t in targets if t != mod and t.split(".")[0] in PACKAGES}
    return out


def _all_imports(tree: ast.AST) -> set[tuple[str, tuple[str, ...]]]:
    """(module, names) of every import: at module level, inside functions, and for type
    checking only, since a cycle of type-only imports is a tangle all the same."""
    found: set[tuple[str, tuple[str, ...]]] = set()

    def walk(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add((node.module, tuple(alias.name for alias in node.names)))
        for child in ast.iter_child_nodes(node):
            walk(child)

    walk(tree)
    return found


def test_packages_import_one_way() -> None:
    bad = []
    for mod, targets in _imports().items():
        top = mod.split(".")[0]
        path = mod.replace(".", "/")
        for target in targets:
            dst = target.split(".")[0]
            if top == "servo_core" and dst != "servo_core":
                bad.append(f"{mod} -> {target} (servo_core is the leaf)")
            if top in ("sim_models", "hw_adapters") and dst == "twin":
                bad.append(f"{mod} -> {target} (nothing imports twin from below)")
            if top == "sim_models" and dst == "hw_adapters":
                bad.append(f"{mod} -> {target} (the simulation does not use the edge)")
            if (
                top == "hw_adapters"
                and dst == "sim_models"
                and not path.startswith(tuple(p.rstrip("/").removesuffix(".py") for p in SIM_USERS))
            ):
                bad.append(f"{mod} -> {target} (hw_adapters uses sim_models only for sim://, the emulator)")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycles() -> None:
    graph = _imports()
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(mod: str) -> None:
        state[mod] = 1
        stack.append(mod)
        for target in sorted(graph.get(mod, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod)
    assert not cycles, "\n".join(cycles)


def test_services_faults_and_patterns_do_not_import_the_scenario_or_the_assembly() -> None:
    graph = _imports()
    bad = [
        f"{mod} -> {t}"
        for mod, targets in graph.items()
        if mod.startswith(("twin.services", "twin.faults", "twin.patterns"))
        for t in targets
        if t.startswith(("twin.scenario", "twin.assembly", "twin.machine", "twin.api"))
    ]
    assert not bad, "\n".join(bad)


def test_a_real_bus_does_not_load_the_simulation() -> None:
    code = (
        "import sys, hw_adapters; from hw_adapters.schemes import bus_schemes; bus_schemes(); "
        "bad = [m for m in ('sim_models', 'pybullet', 'simpy', 'twin') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "", f"importing the edge loaded: {out.stdout}"
