"""Parameter sweeps: run a scenario over a grid of overrides × seeds, in parallel.

`twin sweep SCENARIO [--grid PATH=V1,V2 ...] [--random PATH=DIST ...] [--seeds N] [--workers W |
--dask local | --dask tcp://HOST:PORT] [--resume] [--keep-runs] --out DIR` runs every point of the cartesian
product of the grid, `N` seeds each (the scenario's seed, +1, ...), with each `--random` path
drawn from its distribution for the seed (see :mod:`twin.distributions`), on a local process
pool or on Dask. It writes one row per point to DIR/results.csv and DIR/results.parquet, the
sweep's definition to DIR/sweep.json, and a summary plot per asserted metric and swept
parameter. Each point runs through :func:`run_point`, a pure module-level function, so the rows
are the same whichever executor ran them.
"""

from __future__ import annotations

import argparse
import csv
import functools
import importlib
import io
import itertools
import math
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from servo_core.errors import TwinError
from twin.distributions import Distribution, DistributionError, parse_distribution, split_top_level

__all__ = [
    "FIXED_COLUMNS",
    "Point",
    "Progress",
    "SweepError",
    "SweepResult",
    "add_parser",
    "expand",
    "main",
    "parse_cell",
    "parse_grid",
    "parse_random",
    "point_key",
    "read_csv",
    "run_point",
    "sweep",
    "validate",
]

Grid = list[tuple[str, list[Any]]]
Randoms = list[tuple[str, Distribution]]
Progress = Callable[[int, int, int, float], None]
"""(done, failed, total, eta_s): called as each point finishes (eta_s is NaN until known)."""

FIXED_COLUMNS = ("seed", "status", "error")
RUN_COLUMN = "run"
"""With keep_runs (--keep-runs): the point's run directory, relative to the sweep's."""
RUNS_FOLDER = "runs"
STATUSES = ("passed", "failed", "error")
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
CONNECT_TIMEOUT = "3s"


class SweepError(TwinError):
    """Bad sweep input (grid, workers, executor) or an unreachable Dask scheduler."""


@dataclass(frozen=True)
class Point:
    """One run of the sweep: its position in the sweep, the overrides and the seed."""

    index: int
    values: tuple[tuple[str, Any], ...]  # (path, parsed value) in grid order
    seed: int

    @property
    def overrides(self) -> list[str]:
        return [f"{path}={_set_text(value)}" for path, value in self.values]

    @property
    def key(self) -> str:
        return point_key(dict(self.values), self.seed)


def cell(value: Any) -> str:
    """The text of one value in results.csv and in a point's key (deterministic, round-trips
    through float() and, finite values, through YAML as `--set` reads it)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text:  # YAML 1.1 reads 1e-05 as a string, 1.0e-05 as a float
            mantissa, _, exponent = text.partition("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    return str(value)


def _set_text(value: Any) -> str:
    """A value as an override's text: YAML spells the non-finite floats its own way."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    return cell(value)


def point_key(values: dict[str, Any], seed: int | str) -> str:
    """A stable key: `path=value;...;seed=N` with the values as results.csv writes them."""
    return ";".join([*(f"{p}={cell(v)}" for p, v in values.items()), f"seed={seed}"])


# --------------------------------------------------------------------------- grid


def _parse_value(text: str, path: str, option: str = "--grid") -> Any:
    """One value, read as YAML with the rules of `--set`."""
    from twin.scenario.overrides import _OverrideError
    from twin.scenario.overrides import _parse_value as parse

    try:
        return parse(text, path)
    except _OverrideError as exc:
        raise SweepError(f"{option} {path}={text}: {exc.message}") from None


def _assignment(text: str, option: str, usage: str, seen: set[str], again: str) -> tuple[str, str]:
    """`PATH=REST` of one option -> (path, rest); SweepError if malformed or the path is taken."""
    raw_path, equals, rest = text.partition("=")
    path = raw_path.strip()
    if not equals or not path:
        raise SweepError(f"{option} {text!r}: expected {usage}")
    if path in seen:
        raise SweepError(f"{option} {path}: {again}")
    seen.add(path)
    return path, rest


def parse_grid(texts: Sequence[str]) -> Grid:
    """`["a.b=1,2", "c=x,y"]` -> `[("a.b", [1, 2]), ("c", ["x", "y"])]`; SweepError if malformed."""
    grid: Grid = []
    seen: set[str] = set()
    for text in texts:
        path, raw_values = _assignment(
            text, "--grid", "PATH=V1,V2,...", seen, "given twice; put all its values in one --grid"
        )
        # Commas inside brackets or quotes belong to a value: --grid 'a=[1,2],[3,4]' is two lists.
        parts = split_top_level(raw_values)
        if not any(parts):
            raise SweepError(f"--grid {path}: no values")
        if "" in parts:
            raise SweepError(f"--grid {text!r}: an empty value (two commas in a row, or one at the end)")
        grid.append((path, [_parse_value(part, path) for part in parts]))
    return grid


def parse_random(texts: Sequence[str], grid: Sequence[tuple[str, list[Any]]] = ()) -> Randoms:
    """`["a.b=uniform(0.5, 2)"]` -> `[("a.b", Distribution)]`; SweepError if malformed or if
    a path is also on the grid."""
    randoms: Randoms = []
    seen = {path for path, _ in grid}
    for text in texts:
        path, raw_dist = _assignment(
            text,
            "--random",
            "PATH=DIST, e.g. PATH=uniform(0.5, 2)",
            seen,
            "already swept; a path takes one --grid or one --random",
        )
        try:
            choice_value = functools.partial(_choice_value, path)
            randoms.append((path, parse_distribution(raw_dist, choice_value)))
        except DistributionError as exc:
            raise SweepError(f"--random {path}={raw_dist.strip()}: {exc}") from None
    return randoms


def _choice_value(path: str, text: str) -> Any:
    return _parse_value(text, path, "--random")


def expand(
    grid: Grid, seeds: int, base_seed: int, randoms: Sequence[tuple[str, Distribution]] = ()
) -> list[Point]:
    """Every point: the cartesian product of the grid (first path slowest) × seeds
    `base_seed .. base_seed + seeds - 1` (fastest), in a deterministic order, each with the
    random paths' draws for its seed (the same draws at every grid point)."""
    if seeds < 1:
        raise SweepError(f"--seeds must be at least 1, got {seeds}")
    paths = [path for path, _ in grid]
    draws = {
        seed: tuple((path, dist.draw(seed, path)) for path, dist in randoms)
        for seed in _seeds(seeds, base_seed)
    }
    points: list[Point] = []
    for combo in itertools.product(*(values for _, values in grid)):
        for seed in _seeds(seeds, base_seed):
            values = tuple(zip(paths, combo, strict=True)) + draws[seed]
            points.append(Point(len(points), values, seed))
    return points


def _seeds(seeds: int, base_seed: int) -> range:
    return range(base_seed, base_seed + seeds)


def validate(
    scenario_path: str | os.PathLike[str],
    grid: Grid,
    randoms: Sequence[tuple[str, Distribution]] = (),
    seeds: int = 1,
    base_seed: int | None = None,
) -> Any:
    """Load the scenario with every grid value applied (ScenarioError naming the bad `--set`
    otherwise), and with the lowest and the highest draw of each random path, or each distinct
    draw when they are not numbers (SweepError naming the `--random`, the seed and the draw);
    return the scenario as loaded with the grid's first values."""
    from twin.api import load
    from twin.scenario import ScenarioError

    base = [f"{path}={_set_text(values[0])}" for path, values in grid]
    first = load(scenario_path, base)
    for i in range(1, max((len(values) for _, values in grid), default=1)):
        load(scenario_path, [f"{path}={_set_text(values[min(i, len(values) - 1)])}" for path, values in grid])
    start = first.seed if base_seed is None else base_seed
    for path, dist in randoms:
        drawn = {seed: dist.draw(seed, path) for seed in _seeds(seeds, start)}
        if all(_numeric(v) and v is not None for v in drawn.values()):
            low, high = min(drawn, key=drawn.__getitem__), max(drawn, key=drawn.__getitem__)
            checks = [low] if low == high else [low, high]
        else:
            checks = list({cell(v): seed for seed, v in drawn.items()}.values())
        for seed in checks:
            try:
                load(scenario_path, [*base, f"{path}={_set_text(drawn[seed])}"])
            except ScenarioError as exc:
                problem = "; ".join(p.message for p in exc.problems)
                raise SweepError(
                    f"--random {path}={dist.text}: seed {seed} draws {cell(drawn[seed])}, "
                    f"which the scenario refuses: {problem}"
                ) from None
    return first


# --------------------------------------------------------------------------- one point


def _numeric(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def run_point(
    scenario_path: str, overrides: Sequence[str], seed: int, run_dir: str | None = None
) -> dict[str, Any]:
    """Run one point in this process and return its row: the swept values by path, `seed`,
    `status` (passed/failed/error), `error` and the numeric metrics by dotted path. An
    exception becomes a row with status 'error'. No run directory and no plots, unless
    `run_dir` asks for the run's directory to be written there (as `twin run --out` does)."""
    row: dict[str, Any] = {}
    for item in overrides:
        path, _, text = item.partition("=")
        try:
            row[path] = _parse_value(text, path)
        except SweepError:
            row[path] = text
    row.update(seed=seed, status="error", error="")
    try:
        from twin.api import load, run
        from twin.observe.metrics import flatten

        result = run(load(scenario_path, list(overrides)), seed, out=run_dir)
        row["status"] = "passed" if result.passed else "failed"
        if not result.complete:
            row["error"] = f"incomplete: {result.reason}"
        for path, value in flatten(result.metrics).items():
            if _numeric(value) and path not in row:
                row[path] = value
    except Exception as exc:  # a point that raises is a row, never the end of the sweep
        row["error"] = f"{type(exc).__name__}: {exc}".strip()
    return row


# --------------------------------------------------------------------------- executors


class _Tracker:
    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.progress = total, progress
        self.done = self.failed = 0
        self.start = time.monotonic()  # wall-clock ok: the ETA is for the person waiting

    def add(self, row: dict[str, Any]) -> None:
        self.done += 1
        self.failed += row["status"] != "passed"
        if self.progress is not None:
            elapsed = time.monotonic() - self.start  # wall-clock ok
            eta = elapsed / self.done * (self.total - self.done)
            self.progress(self.done, self.failed, self.total, eta)


def _run_pool(
    scenario: str,
    points: list[Point],
    workers: int,
    tracker: _Tracker,
    rows: dict[int, dict[str, Any]],
    run_dirs: dict[int, str],
) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: safe with PyBullet
    with ProcessPoolExecutor(max_workers=min(workers, len(points)), mp_context=context) as pool:
        futures = {
            pool.submit(run_point, scenario, p.overrides, p.seed, run_dirs.get(p.index)): p for p in points
        }
        try:
            for future in as_completed(futures):
                point = futures[future]
                try:
                    row = future.result()
                except Exception as exc:  # the worker itself died
                    row = _error_row(point, exc)
                rows[point.index] = row
                tracker.add(row)
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _dask_client(dask: str, workers: int) -> tuple[Any, Any]:
    try:
        distributed = importlib.import_module("distributed")
    except ImportError:
        raise SweepError("--dask needs dask.distributed: pip install 'servotwin[scale]'") from None
    if dask == "local":
        dask_config = importlib.import_module("dask").config
        # The workers' statistical profiler samples every running task 100 times a second, which
        # costs a CPU-bound run about 6 %; nobody reads those profiles here (no dashboard).
        with dask_config.set({"distributed.worker.profile.enabled": False}):
            cluster = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
        return distributed.Client(cluster), cluster
    try:
        return distributed.Client(dask, timeout=CONNECT_TIMEOUT), None
    except (OSError, TimeoutError) as exc:
        raise SweepError(f"--dask {dask}: cannot reach the Dask scheduler ({exc})") from None


def _run_dask(
    scenario: str,
    points: list[Point],
    dask: str,
    workers: int,
    tracker: _Tracker,
    rows: dict[int, dict[str, Any]],
    run_dirs: dict[int, str],
) -> None:
    client, cluster = _dask_client(dask, workers)
    sweep_id = uuid.uuid4().hex[:12]  # keys unique on a scheduler that other sweeps share
    try:
        distributed = importlib.import_module("distributed")
        futures = {
            client.submit(
                run_point,
                scenario,
                p.overrides,
                p.seed,
                run_dirs.get(p.index),
                pure=False,
                key=f"twin-sweep-{sweep_id}-point-{p.index}",
            ): p
            for p in points
        }
        try:
            for future in distributed.as_completed(list(futures)):
                point = futures[future]
                try:
                    row = future.result()
                except Exception as exc:
                    row = _error_row(point, exc)
                rows[point.index] = row
                tracker.add(row)
        except BaseException:  # Ctrl-C: the points not started yet are dropped, on a shared cluster too
            client.cancel(list(futures))
            raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _error_row(point: Point, exc: BaseException) -> dict[str, Any]:
    return {
        **dict(point.values),
        "seed": point.seed,
        "status": "error",
        "error": f"{type(exc).__name__}: {exc}".strip(),
    }


# --------------------------------------------------------------------------- output


def _columns(params: Sequence[str], rows: Sequence[dict[str, Any]]) -> list[str]:
    fixed = list(params) + list(FIXED_COLUMNS) + ([RUN_COLUMN] if any(RUN_COLUMN in r for r in rows) else [])
    metrics = sorted({key for row in rows for key in row} - set(fixed))
    return fixed + metrics


def _csv_text(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row.get(column)) for column in columns])
    return buffer.getvalue()


def parse_cell(text: str) -> Any:
    """A results.csv cell typed back: None (empty), an int, a float, else the text."""
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_csv(path: Path, params: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The rows of an earlier results.csv by point key (values typed back); `params` are the
    swept paths (grid, then random) in column order."""
    paths = set(params)
    out: dict[str, dict[str, Any]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for raw in csv.DictReader(f):
            if any(p not in raw for p in paths) or "seed" not in raw:
                raise SweepError(f"--resume: {path} was written by a sweep over other parameters")
            key = ";".join([*(f"{p}={raw[p]}" for p in params), f"seed={raw['seed']}"])
            row: dict[str, Any] = {}
            for column, text in raw.items():
                if column in paths:
                    row[column] = _parse_value(text, column) if text != "" else None
                elif column in ("status", "error", RUN_COLUMN):
                    row[column] = text
                else:
                    row[column] = parse_cell(text)
            out[key] = row
    return out


def _write_parquet(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    pa = importlib.import_module("pyarrow")
    pq = importlib.import_module("pyarrow.parquet")
    arrays = []
    for column in columns:
        values = [row.get(column) for row in rows]
        present = [v for v in values if v is not None]
        if present and all(_numeric(v) for v in present) and any(isinstance(v, float) for v in present):
            values = [None if v is None else float(v) for v in values]
        elif present and not all(type(v) is type(present[0]) for v in present):
            values = [None if v is None else cell(v) for v in values]
        arrays.append(pa.array(values))
    table = pa.Table.from_arrays(arrays, names=list(columns))
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- the sweep


@dataclass
class SweepResult:
    """The rows of a sweep in point order (those resumed included) and where they went."""

    rows: list[dict[str, Any]]
    columns: list[str]
    out: Path
    skipped: int = 0  # points found in an earlier results.csv (--resume)
    images: list[Path] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(row["status"] == "passed" for row in self.rows)

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(row["status"] == s for row in self.rows) for s in STATUSES}


def sweep(
    scenario_path: str | os.PathLike[str],
    grid: Grid | Sequence[str] = (),
    seeds: int = 1,
    workers: int | None = None,
    dask: str | None = None,
    resume: bool = False,
    out: str | os.PathLike[str] = "sweep",
    progress: Progress | None = None,
    base_seed: int | None = None,
    plots: bool = True,
    random: Randoms | Sequence[str] = (),
    keep_runs: bool = False,
) -> SweepResult:
    """Run `scenario_path` at every point of `grid` (parsed, or `--grid` texts) × `seeds`,
    with the `random` paths (parsed, or `--random` texts) drawn for each seed.

    Everything is checked before the first run: the grid, the distributions, every value and
    the extreme draws applied to the scenario (ScenarioError naming the bad `--set`),
    `workers` ≥ 1, a reachable Dask scheduler. `dask` is None (a local process pool of
    `workers`, default os.cpu_count()), "local" (a Dask LocalCluster of `workers` processes)
    or a scheduler address. `keep_runs` also has each point write its run directory (telemetry,
    plots, report) to DIR/runs/point-NNNN, named in the row's `run` column; on a scheduler
    elsewhere, DIR must be on a file system the workers share."""
    if grid and isinstance(grid[0], str):
        grid = parse_grid(grid)  # type: ignore[arg-type]
    parsed: Grid = list(grid)  # type: ignore[arg-type]
    if random and isinstance(random[0], str):
        random = parse_random(random, parsed)  # type: ignore[arg-type]
    randoms: Randoms = list(random)  # type: ignore[arg-type]
    if workers is not None and workers < 1:
        raise SweepError(f"--workers must be at least 1, got {workers}")
    n_workers = workers or os.cpu_count() or 1
    scenario = validate(scenario_path, parsed, randoms, seeds, base_seed)
    start_seed = scenario.seed if base_seed is None else base_seed
    points = expand(parsed, seeds, start_seed, randoms)
    params = [path for path, _ in parsed] + [path for path, _ in randoms]
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise SweepError(f"--out {out_dir}: not a directory")
    csv_path = out_dir / "results.csv"
    earlier = read_csv(csv_path, params) if resume and csv_path.exists() else {}
    rows: dict[int, dict[str, Any]] = {}
    for point in points:
        if point.key in earlier:
            rows[point.index] = earlier[point.key]
    todo = [p for p in points if p.index not in rows]
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_definition(out_dir, scenario_path, scenario, parsed, randoms, seeds, start_seed)
    tracker = _Tracker(len(todo), progress)
    path = os.fspath(scenario_path)
    width = max(4, len(str(len(points) - 1)))
    names = {p.index: f"{RUNS_FOLDER}/point-{p.index:0{width}d}" for p in todo} if keep_runs else {}
    run_dirs = {index: os.fspath((out_dir / name).resolve()) for index, name in names.items()}
    try:
        if todo and dask is not None:
            _run_dask(path, todo, dask, n_workers, tracker, rows, run_dirs)
        elif todo:
            _run_pool(path, todo, n_workers, tracker, rows, run_dirs)
    finally:  # what finished is kept, so that --resume goes on from there
        for index, name in names.items():
            if index in rows:
                rows[index][RUN_COLUMN] = name
        ordered = [rows[p.index] for p in points if p.index in rows]
        columns = _columns(params, ordered)
        _write(out_dir, columns, ordered)
    images: list[Path] = []
    if plots:
        from twin.observe.sweep_plot import plot_sweep

        metrics = [m for m in sorted({a.path for a in scenario.assertions}) if m in columns]
        bounds: dict[str, list[tuple[str, float]]] = {}
        for assertion in scenario.assertions:
            bounds.setdefault(assertion.path, []).append((assertion.op, assertion.bound))
        images = plot_sweep(out_dir, parsed, [path for path, _ in randoms], metrics, ordered, bounds)
    return SweepResult(ordered, columns, out_dir, len(points) - len(todo), images)


DEFINITION = "sweep.json"


def _write_definition(
    out_dir: Path,
    scenario_path: str | os.PathLike[str],
    scenario: Any,
    grid: Grid,
    randoms: Randoms,
    seeds: int,
    base_seed: int,
) -> None:
    """DIR/sweep.json: what was swept, so that the rows can be read (and compared) on their own."""
    import hashlib
    import json

    from twin.observe.files import write_text_atomic

    source = Path(scenario_path)
    definition = {
        "scenario": os.fspath(scenario_path),
        "name": scenario.name,
        "scenario_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "grid": {path: [cell(v) for v in values] for path, values in grid},
        "random": {path: dist.text for path, dist in randoms},
        "seeds": seeds,
        "base_seed": base_seed,
        "assertions": [{"path": a.path, "op": a.op, "bound": a.bound} for a in scenario.assertions],
    }
    write_text_atomic(out_dir / DEFINITION, json.dumps(definition, indent=2) + "\n")


def _write(out_dir: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    from twin.observe.files import write_text_atomic

    write_text_atomic(out_dir / "results.csv", _csv_text(columns, rows))
    _write_parquet(out_dir / "results.parquet", columns, rows)


# --------------------------------------------------------------------------- CLI


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `sweep` to the `twin` command's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "sweep", help="run a scenario over a grid of overrides and seeds, in parallel"
    )
    p.add_argument("scenario", type=Path)
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="PATH=V1,V2,...",
        help="a swept field and its values (read as --set reads them; a comma inside [...] or quotes "
        "stays in its value); repeat for a cartesian product",
    )
    p.add_argument(
        "--random",
        action="append",
        default=[],
        metavar="PATH=DIST",
        help="a field drawn per seed: uniform(LO,HI), normal(MEAN,SD[,LO,HI]), lognormal(MEDIAN,SIGMA), "
        "loguniform(LO,HI), randint(LO,HI) or choice(V1,V2,...); the same draws at every grid point",
    )
    p.add_argument(
        "--seeds", type=int, default=1, help="seeds per point, from the scenario's seed (default 1)"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="local processes (default: one per CPU)")
    where.add_argument(
        "--dask",
        metavar="local|ADDRESS",
        help="run on Dask: a local cluster or a scheduler (tcp://HOST:PORT)",
    )
    p.add_argument("--resume", action="store_true", help="skip the points already in DIR/results.csv")
    p.add_argument(
        "--keep-runs",
        action="store_true",
        help="also write each point's run directory (telemetry, plots, report) under DIR/runs/",
    )
    p.add_argument("--out", type=Path, required=True, help="directory for results.csv/.parquet and plots")
    return p


def progress_printer(err: TextIO, tty: bool | None = None) -> Progress:
    """On a terminal a `\\r` line; otherwise a line at every 10 %."""
    tty = err.isatty() if tty is None else tty
    last = [-1]

    def show(done: int, failed: int, total: int, eta_s: float) -> None:
        eta = f"ETA {eta_s:.0f} s" if done < total and not math.isnan(eta_s) else "done"
        text = f"sweep: {done}/{total} runs, {failed} failed, {eta}"
        if tty:
            err.write(f"\r{text}" + ("\n" if done == total else ""))
            err.flush()
            return
        decile = done * 10 // total
        if decile > last[0]:
            last[0] = decile
            err.write(text + "\n")
            err.flush()

    return show


def main(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`twin sweep`: 0 when every point passed, 1 otherwise, 2 for bad input."""
    try:
        grid = parse_grid(args.grid)
        randoms = parse_random(args.random, grid)
        result = sweep(
            args.scenario,
            grid,
            args.seeds,
            workers=args.workers,
            dask=args.dask,
            resume=args.resume,
            out=args.out,
            progress=progress_printer(err),
            random=randoms,
            keep_runs=args.keep_runs,
        )
    except TwinError as exc:
        err.write(f"{exc}\n")
        return EXIT_BAD_INPUT
    counts = result.counts
    resumed = f" ({result.skipped} from an earlier sweep)" if result.skipped else ""
    out.write(
        f"{len(result.rows)} points{resumed}: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['error']} errors; results in {result.out / 'results.csv'}\n"
    )
    paths = [path for path, _ in grid] + [path for path, _ in randoms]
    errors = [row for row in result.rows if row["status"] == "error"]
    for row in errors[:10]:
        where = point_key({p: row.get(p) for p in paths}, row["seed"])
        out.write(f"  error at {where}: {row['error']}\n")
    return EXIT_OK if result.passed else EXIT_FAILED
