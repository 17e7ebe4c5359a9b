"""`twin sweep`: grid parsing, the pool and Dask executors, error rows, resume, refusals."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import pytest

from twin.scenario import ScenarioError
from twin.sweep import (
    SweepError,
    SweepResult,
    add_parser,
    expand,
    main,
    parse_grid,
    run_point,
    sweep,
)

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "pan_tilt.yaml"
GRID = ["duration=1,2", "topology.services.3.rate_hz=100,200"]


def test_parse_grid_reads_values_as_yaml_scalars() -> None:
    grid = parse_grid(["duration=1, 2.5", "name=a,b", "outputs.plots=true,false"])
    assert grid == [("duration", [1, 2.5]), ("name", ["a", "b"]), ("outputs.plots", [True, False])]
    for bad in (["duration"], ["=1"], ["duration=1", "duration=2"], ["duration="]):
        with pytest.raises(SweepError):
            parse_grid(bad)


def test_expand_is_the_cartesian_product_times_seeds_in_a_stable_order() -> None:
    points = expand(parse_grid(["a=1,2", "b=x,y"]), seeds=2, base_seed=7)
    assert len(points) == 8
    assert [p.index for p in points] == list(range(8))
    assert points[0].key == "a=1;b=x;seed=7"
    assert points[1].key == "a=1;b=x;seed=8"
    assert points[-1].key == "a=2;b=y;seed=8"
    assert points[3].overrides == ["a=1", "b=y"]
    assert len({p.key for p in points}) == 8
    with pytest.raises(SweepError):
        expand(parse_grid(["a=1"]), seeds=0, base_seed=0)


def _check_rows(result: SweepResult, out: Path) -> None:
    assert len(result.rows) == 8
    assert result.columns[:5] == ["duration", "topology.services.3.rate_hz", "seed", "status", "error"]
    assert "tracking.max_error_deg" in result.columns
    assert [(r["duration"], r["topology.services.3.rate_hz"], r["seed"]) for r in result.rows][:3] == [
        (1, 100, 7),
        (1, 100, 8),
        (1, 200, 7),
    ]
    assert all(r["status"] in ("passed", "failed") for r in result.rows)
    assert all(r["error"] == "" for r in result.rows)
    with open(out / "results.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 8
    assert (out / "results.parquet").exists()
    assert (out / "tracking.max_error_deg_vs_duration.png").exists()


def test_pool_and_dask_local_cluster_give_identical_rows(tmp_path: Path) -> None:
    seen: list[tuple[int, int, int]] = []
    pool = sweep(
        SCENARIO,
        GRID,
        seeds=2,
        workers=2,
        out=tmp_path / "pool",
        progress=lambda done, failed, total, eta: seen.append((done, failed, total)),
    )
    _check_rows(pool, tmp_path / "pool")
    assert [s[0] for s in seen] == list(range(1, 9)) and all(s[2] == 8 for s in seen)
    pq = pytest.importorskip("pyarrow.parquet")
    assert pq.read_table(tmp_path / "pool" / "results.parquet").num_rows == 8

    pytest.importorskip("distributed")
    on_dask = sweep(SCENARIO, GRID, seeds=2, workers=2, dask="local", out=tmp_path / "dask")
    _check_rows(on_dask, tmp_path / "dask")
    assert on_dask.rows == pool.rows
    assert (tmp_path / "dask" / "results.csv").read_text() == (tmp_path / "pool" / "results.csv").read_text()


def test_a_point_that_raises_becomes_an_error_row() -> None:
    row = run_point(str(SCENARIO), ["duration=1", "plant.servos.0.model=no-such-servo"], 3)
    assert row["status"] == "error"
    assert "no-such-servo" in row["error"] or "model" in row["error"]
    assert row["seed"] == 3 and row["duration"] == 1
    assert "tracking.max_error_deg" not in row


def test_resume_skips_the_points_already_written(tmp_path: Path) -> None:
    first = sweep(SCENARIO, ["duration=1"], seeds=2, workers=1, out=tmp_path, plots=False)
    assert first.skipped == 0 and len(first.rows) == 2
    second = sweep(SCENARIO, ["duration=1,2"], seeds=2, workers=1, out=tmp_path, resume=True, plots=False)
    assert second.skipped == 2
    assert len(second.rows) == 4
    assert second.rows[:2] == first.rows
    again = sweep(SCENARIO, ["duration=1,2"], seeds=2, workers=1, out=tmp_path, resume=True, plots=False)
    assert again.skipped == 4 and again.rows == second.rows


def test_an_unknown_path_is_refused_before_any_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ScenarioError, match="no_such_field"):
        sweep(SCENARIO, ["duration=1", "no_such_field=1,2"], out=out)
    assert not out.exists()
    with pytest.raises(ScenarioError, match="duration"):
        sweep(SCENARIO, ["duration=1,-3"], out=out)
    assert not out.exists()
    with pytest.raises(SweepError, match="--workers"):
        sweep(SCENARIO, ["duration=1"], workers=0, out=out)


def test_an_unreachable_dask_scheduler_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    with pytest.raises(SweepError, match="cannot reach the Dask scheduler"):
        sweep(SCENARIO, ["duration=1"], dask="tcp://127.0.0.1:9", out=tmp_path)


def _cli(argv: list[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    out, err = io.StringIO(), io.StringIO()
    return main(parser.parse_args(argv), out, err), out.getvalue(), err.getvalue()


def test_cli_exit_codes(tmp_path: Path) -> None:
    code, out, err = _cli(
        ["sweep", str(SCENARIO), "--grid", "duration=1", "--workers", "1", "--out", str(tmp_path)]
    )
    assert code == 0, err
    assert "1 points" in out and "1 passed" in out
    assert "sweep: 1/1 runs, 0 failed" in err
    code, _, err = _cli(["sweep", str(SCENARIO), "--grid", "bogus.path=1", "--out", str(tmp_path / "x")])
    assert code == 2 and "bogus" in err
