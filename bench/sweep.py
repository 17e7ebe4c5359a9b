"""Sweep throughput: runs per minute of a 10 s pan_tilt, on 1 worker and on W, and on Dask.

    python bench/sweep.py [--runs N] [--workers W]

Every variant runs the same N points (pan_tilt.yaml at duration=10, seeds 7..7+N-1) through
`twin.sweep.sweep`, start-up of the worker processes included, so the figures are what a user
of `twin sweep` sees. Parallel efficiency = (runs/min on W) / (W × runs/min on 1). The Dask
variant is a LocalCluster of W single-threaded worker processes against the local process pool
of W. Every variant must give the same rows; the script says so when they differ.

The machine's own ceiling comes first: W warmed-up processes each running the same runs back to
back, with no executor, against one such process alone. Their ratio is the best parallel
efficiency any executor can reach on this machine (cores that share caches, memory bandwidth
or a hypervisor's time run slower side by side).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from twin.sweep import sweep

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "pan_tilt.yaml"


def _timed(runs: int, workers: int, dask: str | None, out: Path) -> tuple[float, list[dict[str, Any]]]:
    start = time.perf_counter()
    result = sweep(SCENARIO, ["duration=10"], seeds=runs, workers=workers, dask=dask, out=out, plots=False)
    elapsed = time.perf_counter() - start
    return runs / elapsed * 60.0, result.rows


def _solo(runs: int) -> float:
    """Seconds for `runs` 10 s pan_tilt runs back to back in this process, after a warm-up."""
    from twin.sweep import run_point

    run_point(str(SCENARIO), ["duration=1"], 0)
    start = time.perf_counter()
    for seed in range(runs):
        run_point(str(SCENARIO), ["duration=10"], seed)
    return time.perf_counter() - start


def machine_ceiling(workers: int, runs: int = 6) -> float:
    """(one process alone) / (slowest of `workers` processes side by side), same work each."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        alone = pool.map(_solo, [runs])[0]
    with context.Pool(workers) as pool:
        side_by_side = max(pool.map(_solo, [runs] * workers))
    return alone / side_by_side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=16, help="points per variant (default 16)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="W (default: CPUs)")
    args = parser.parse_args()
    w = args.workers
    print(f"pan_tilt, duration 10 s, {args.runs} runs per variant, {os.cpu_count()} CPUs, W = {w}")
    ceiling = machine_ceiling(w)
    print(f"  machine ceiling: {w} processes side by side run at {ceiling:.0%} of one alone")
    with tempfile.TemporaryDirectory() as tmp:
        one, rows = _timed(args.runs, 1, None, Path(tmp) / "one")
        pool, pool_rows = _timed(args.runs, w, None, Path(tmp) / "pool")
        print(f"  pool, 1 worker        {one:8.1f} runs/min")
        efficiency = pool / (w * one)
        print(
            f"  pool, {w} workers{'':<7}{pool:8.1f} runs/min   efficiency {efficiency:.0%} "
            f"({efficiency / ceiling:.0%} of the ceiling)"
        )
        try:
            on_dask, dask_rows = _timed(args.runs, w, "local", Path(tmp) / "dask")
        except Exception as exc:  # dask not installed: say so, keep the pool figures
            print(f"  dask LocalCluster: not run ({exc})")
            return
        print(f"  dask local, {w} workers {on_dask:7.1f} runs/min   vs pool {on_dask / pool:.0%}")
        same = rows == pool_rows == dask_rows
        print(f"  rows identical across executors: {same}")


if __name__ == "__main__":
    main()
