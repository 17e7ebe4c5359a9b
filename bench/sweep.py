"""Sweep throughput: runs per minute of a 10 s pan_tilt, on 1 worker and on W, and on Dask.

    python bench/sweep.py [--runs N] [--workers W]

Every variant runs the same N points (pan_tilt.yaml at duration=10, seeds 7..7+N-1) through
`twin.sweep.sweep`, start-up of the worker processes included, so the figures are what a user
of `twin sweep` sees. Parallel efficiency = (runs/min on W) / (W × runs/min on 1). The Dask
variant is a LocalCluster of W single-threaded worker processes against the local process pool
of W. Every variant must give the same rows; the script says so when they differ.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=16, help="points per variant (default 16)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="W (default: CPUs)")
    args = parser.parse_args()
    w = args.workers
    print(f"pan_tilt, duration 10 s, {args.runs} runs per variant, {os.cpu_count()} CPUs, W = {w}")
    with tempfile.TemporaryDirectory() as tmp:
        one, rows = _timed(args.runs, 1, None, Path(tmp) / "one")
        pool, pool_rows = _timed(args.runs, w, None, Path(tmp) / "pool")
        print(f"  pool, 1 worker        {one:8.1f} runs/min")
        print(f"  pool, {w} workers{'':<7}{pool:8.1f} runs/min   efficiency {pool / (w * one):.0%}")
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
