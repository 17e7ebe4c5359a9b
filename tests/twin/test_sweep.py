"""`twin sweep`: grid parsing, the pool and Dask executors, error rows, resume, refusals."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import pytest

from twin.scenario import ScenarioError
from twin.scenario.overrides import _parse_value
from twin.sweep import (
    SweepError,
    SweepResult,
    add_parser,
    expand,
    main,
    parse_grid,
    parse_random,
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


def test_grid_values_may_hold_commas_inside_brackets_or_quotes() -> None:
    grid = parse_grid(["a=[1, 2],[3,4]", "b='x,y',z"])
    assert grid == [("a", [[1, 2], [3, 4]]), ("b", ["x,y", "z"])]
    with pytest.raises(SweepError, match="empty value"):
        parse_grid(["a=1,,2"])


def test_float_values_round_trip_through_the_override_text() -> None:
    points = expand(parse_grid(["a=1.0e-05,2.5e+20"]), seeds=1, base_seed=0)
    assert [p.overrides for p in points] == [["a=1.0e-05"], ["a=2.5e+20"]]
    assert [_parse_value(p.overrides[0].partition("=")[2], "a") for p in points] == [1e-05, 2.5e20]


def test_random_paths_are_drawn_per_seed_and_shared_by_the_grid_points() -> None:
    randoms = parse_random(["c=uniform(0, 1)", "d=choice(x, y)"], parse_grid(["a=1,2"]))
    points = expand(parse_grid(["a=1,2"]), seeds=3, base_seed=5, randoms=randoms)
    assert len(points) == 6
    values = [dict(p.values) for p in points]
    assert [v["c"] for v in values[:3]] == [v["c"] for v in values[3:]], "common random numbers"
    assert len({v["c"] for v in values[:3]}) == 3, "each seed draws its own"
    assert values[0]["c"] == randoms[0][1].draw(5, "c")
    assert points[0].key == f"a=1;c={values[0]['c']!r};d={values[0]['d']};seed=5"
    with pytest.raises(SweepError, match="a path takes one --grid or one --random"):
        parse_random(["a=uniform(0, 1)"], parse_grid(["a=1,2"]))
    with pytest.raises(SweepError, match="--random c=uniform\\(1\\): .*expected uniform\\(LO, HI\\)"):
        parse_random(["c=uniform(1)"])


def test_a_random_supply_voltage_makes_seeds_track_differently(tmp_path: Path) -> None:
    path = "plant.servos.0.supply_v"
    plain = sweep(SCENARIO, ["duration=2"], seeds=3, workers=1, out=tmp_path / "plain", plots=False)
    varied = sweep(
        SCENARIO,
        ["duration=2"],
        seeds=3,
        workers=1,
        out=tmp_path / "varied",
        random=[f"{path}=uniform(7.0, 12.5)"],
    )
    assert len({r["tracking.max_error_deg"] for r in plain.rows}) == 1, "no tolerances: seeds alike"
    assert len({r["tracking.max_error_deg"] for r in varied.rows}) == 3, "each seed its own supply"
    assert varied.columns[:3] == ["duration", path, "seed"]
    assert all(7.0 <= r[path] < 12.5 for r in varied.rows)
    assert (tmp_path / "varied" / f"tracking.max_error_deg_vs_{path}.png").exists()
    definition = json.loads((tmp_path / "varied" / "sweep.json").read_text())
    assert definition["random"] == {path: "uniform(7.0, 12.5)"} and definition["seeds"] == 3
    again = sweep(
        SCENARIO,
        ["duration=2"],
        seeds=3,
        workers=1,
        out=tmp_path / "varied",
        random=[f"{path}=uniform(7.0, 12.5)"],
        resume=True,
        plots=False,
    )
    assert again.skipped == 3 and again.rows == varied.rows


def test_a_draw_the_scenario_refuses_stops_the_sweep_before_any_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, _, err = _cli(
        [
            "sweep",
            str(SCENARIO),
            "--random",
            "plant.servos.0.supply_v=normal(3, 5)",
            "--seeds",
            "20",
            "--out",
            str(out),
        ]
    )
    assert code == 2
    assert "--random plant.servos.0.supply_v=normal(3, 5): seed" in err and "greater than 0" in err
    assert not out.exists()


def test_seeds_alone_are_a_monte_carlo_with_a_histogram_per_metric(tmp_path: Path) -> None:
    scenario = tmp_path / "spread.yaml"
    scenario.write_text(
        SCENARIO.read_text()
        + "\ntolerances:\n  servos: {coulomb_friction_nm: {uniform: 0.5}}\n  supply_v: {normal: 0.1}\n"
    )
    result = sweep(scenario, [], seeds=4, workers=2, out=tmp_path / "mc", base_seed=1)
    assert [r["seed"] for r in result.rows] == [1, 2, 3, 4]
    assert result.columns[:3] == ["seed", "status", "error"]
    assert len({r["tracking.max_error_deg"] for r in result.rows}) == 4, "tolerances: seeds differ"
    assert (tmp_path / "mc" / "tracking.max_error_deg_hist.png").exists()
    code, out, _ = _cli(
        ["sweep", str(scenario), "--seeds", "2", "--workers", "1", "--out", str(tmp_path / "cli")]
    )
    assert code == 0 and "2 points" in out


@pytest.mark.parametrize("dask", [None, "local"])
def test_an_interrupted_sweep_keeps_what_finished_and_resumes(tmp_path: Path, dask: str | None) -> None:
    def interrupt(done: int, failed: int, total: int, eta: float) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(
            SCENARIO,
            ["duration=1"],
            seeds=6,
            workers=2,
            dask=dask,
            out=tmp_path,
            progress=interrupt,
            plots=False,
        )
    with open(tmp_path / "results.csv", newline="") as f:
        kept = list(csv.DictReader(f))
    assert 2 <= len(kept) < 6 and all(r["status"] == "passed" for r in kept)
    rest = sweep(SCENARIO, ["duration=1"], seeds=6, workers=2, out=tmp_path, resume=True, plots=False)
    assert rest.skipped == len(kept) and [r["seed"] for r in rest.rows] == list(range(7, 13))


def test_keep_runs_writes_each_points_run_directory(tmp_path: Path) -> None:
    from twin.compare import compare
    from twin.observe.metrics import flatten

    result = sweep(SCENARIO, ["duration=1,2"], workers=2, out=tmp_path, keep_runs=True, plots=False)
    assert result.columns[:5] == ["duration", "seed", "status", "error", "run"]
    assert [r["run"] for r in result.rows] == ["runs/point-0000", "runs/point-0001"]
    for row in result.rows:
        run_dir = tmp_path / row["run"]
        assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
        assert (run_dir / "tracking.png").exists()
        metrics = flatten(json.loads((run_dir / "metrics.json").read_text()))
        assert metrics["tracking.max_error_deg"] == row["tracking.max_error_deg"]
        telemetry = (run_dir / "telemetry.csv").read_text().splitlines()
        assert len(telemetry) == 1 + 100 * row["duration"]  # header + a sample every 10 ms
    comparison = compare([tmp_path])
    assert [run.path for run in comparison.runs] == [
        tmp_path / "runs/point-0000",
        tmp_path / "runs/point-0001",
    ]
    resumed = sweep(SCENARIO, ["duration=1,2"], workers=1, out=tmp_path, resume=True, plots=False)
    assert resumed.skipped == 2 and [r["run"] for r in resumed.rows] == ["runs/point-0000", "runs/point-0001"]
