"""`twin compare`: metrics side by side, changed verdicts, markdown and overlay plot."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from servo_core.errors import ConfigError
from twin import api
from twin import compare as cmp
from twin.observe.metrics import flatten
from twin.observe.telemetry import Telemetry

SCENARIO = "scenarios/pan_tilt.yaml"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare")
    made = {
        "a": (1, ["duration=2"]),
        "b": (2, ["duration=2"]),
        # slower edge link: the same assertion `latency.command.p99_ms <= 20` fails
        "slow": (1, ["duration=2", "topology.links.1.latency.mean_ms=15"]),
        "strict": (1, ["duration=2", 'assertions=["tracking.max_error_deg < 0.1"]']),
    }
    for name, (seed, sets) in made.items():
        api.run(api.load(SCENARIO, sets), seed=seed, out=root / name)
    return {name: root / name for name in made}


def _metrics(path: Path) -> dict[str, object]:
    return flatten(json.loads((path / "metrics.json").read_text()))


def _main(argv: list[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    cmp.add_parser(parser.add_subparsers(dest="command"))
    out, err = io.StringIO(), io.StringIO()
    rc = cmp.main(parser.parse_args(["compare", *argv]), out, err)
    return rc, out.getvalue(), err.getvalue()


def test_the_table_has_the_metrics_that_differ_with_their_differences(runs: dict[str, Path]) -> None:
    c = cmp.compare([runs["a"], runs["b"]])
    ma, mb = _metrics(runs["a"]), _metrics(runs["b"])
    shown = {r.path: r for r in c.select()}
    differing = {
        p for p, v in ma.items() if isinstance(v, int | float) and not isinstance(v, bool) and mb.get(p) != v
    }
    assert differing and set(shown) == differing
    row = shown["latency.command.p99_ms"]
    a, b = ma["latency.command.p99_ms"], mb["latency.command.p99_ms"]
    assert isinstance(a, float) and isinstance(b, float)
    assert row.values == (a, b)
    assert row.differences[0] == pytest.approx(b - a)
    assert row.relative[0] == pytest.approx((b - a) / abs(a))
    assert "tracking.max_error_deg" not in shown  # the same in both runs
    every = {r.path for r in c.select(all_rows=True)}
    assert "tracking.max_error_deg" in every and every > set(shown)
    assert {r.path for r in c.select("tracking.*")} <= {p for p in shown if p.startswith("tracking.")}

    text = c.to_text()
    assert "seed 1, complete, PASS" in text and "seed 2, complete, PASS" in text
    assert "no assertion changed verdict" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("latency.command.p99_ms "))
    assert f"{b - a:+.6g}" in line


def test_a_changed_verdict_is_named(runs: dict[str, Path]) -> None:
    c = cmp.compare([runs["a"], runs["slow"]])
    assert [a.expression for a in c.verdict_changes] == ["latency.command.p99_ms <= 20"]
    assert c.verdict_changes[0].passed == (True, False)
    assert c.notes() == ["scenario pan_tilt with different settings (--set or edits)"]
    text = c.to_text()
    assert "latency.command.p99_ms <= 20: baseline PASS" in text and "run 2 FAIL" in text


def test_an_assertion_in_one_run_only_is_listed(runs: dict[str, Path]) -> None:
    c = cmp.compare([runs["a"], runs["strict"]])
    assert not c.verdict_changes
    only = {a.expression: a.passed for a in c.unmatched_assertions}
    assert only["tracking.max_error_deg < 0.1"] == (None, False)
    assert "FAIL" in c.runs[1].header(1)


def test_cli_writes_markdown_and_plot(runs: dict[str, Path], tmp_path: Path) -> None:
    out_dir = tmp_path / "cmp"
    rc, out, err = _main(
        [
            str(runs["a"]),
            str(runs["b"]),
            str(runs["slow"]),
            "--metrics",
            "latency.command.*",
            "--out",
            str(out_dir),
        ]
    )
    assert rc == 0, err
    assert "latency.command.p99_ms <= 20" in out
    assert all(
        ln.startswith(("latency.command.", "metric", "-", "wrote"))
        for ln in out.split("\n\n")[-2].splitlines()
    )
    md = (out_dir / "compare.md").read_text()
    assert "| latency.command.p99_ms |" in md and "tracking.rms_error_deg" not in md
    assert "latency.command.p99_ms <= 20" in md and "compare_tracking.png" in md
    png = out_dir / "compare_tracking.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_all_rows_and_missing_joints(runs: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    for name in ("run.json", "metrics.json"):
        (other / name).write_bytes((runs["b"] / name).read_bytes())
    manifest = json.loads((other / "run.json").read_text())
    manifest["scenario"] = "elsewhere"
    (other / "run.json").write_text(json.dumps(manifest))
    tel = Telemetry.from_csv(runs["b"] / "telemetry.csv")
    t, goal, actual = tel.arrays()
    Telemetry.from_arrays(["pan", "roll"], t, goal, actual).to_csv(other / "telemetry.csv")

    rc, out, err = _main([str(runs["a"]), str(other), "--all", "--out", str(tmp_path / "o")])
    assert rc == 0, err
    assert "different scenarios (pan_tilt, elsewhere)" in out
    assert "tracking.max_error_deg" in out  # equal, shown with --all
    assert "left out of the plot: tilt, roll" in err
    assert (tmp_path / "o" / "compare_tracking.png").exists()


@pytest.mark.parametrize("bad", ["plain", "missing", "file", "no_metrics"])
def test_a_folder_that_is_not_a_run_directory_is_bad_input(
    runs: dict[str, Path], tmp_path: Path, bad: str
) -> None:
    path = tmp_path / bad
    if bad == "plain":
        path.mkdir()
    elif bad == "file":
        path.write_text("x")
    elif bad == "no_metrics":
        path.mkdir()
        (path / "run.json").write_bytes((runs["a"] / "run.json").read_bytes())
    rc, out, err = _main([str(runs["a"]), str(path)])
    assert rc == 2
    assert str(path) in err and "Traceback" not in err + out
    with pytest.raises(ConfigError):
        cmp.compare([runs["a"], path])


def test_one_run_is_not_enough(runs: dict[str, Path]) -> None:
    rc, _, err = _main([str(runs["a"])])
    assert rc == 2 and "at least two" in err


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from twin.sweep import sweep

    out = tmp_path_factory.mktemp("sweep")
    # a slower link breaks `latency.command.p99_ms <= 20` on the second value
    sweep(SCENARIO, ["duration=2", "topology.links.1.latency.mean_ms=1,15"], workers=1, out=out, plots=False)
    return out


def test_a_sweep_row_compares_like_the_run_it_stands_for(
    runs: dict[str, Path], swept: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    sets = ["duration=2", "topology.links.1.latency.mean_ms=15"]
    api.run(api.load(SCENARIO, sets), out=again)
    comparison = cmp.compare([again, f"{swept}#2"])
    assert not comparison.select(), "a row holds the metrics of the same run made on its own"
    assert not comparison.verdict_changes
    assert comparison.runs[1].header(1).endswith("FAIL")


def test_a_sweep_directory_stands_for_all_its_rows(swept: Path, tmp_path: Path) -> None:
    rc, out, err = _main([str(swept), "--metrics", "latency.command.*", "--out", str(tmp_path / "c")])
    assert rc == 0, err
    assert f"baseline: {swept}#1" in out and f"run 2: {swept}#2" in out
    assert "topology.links.1.latency.mean_ms=15" in out
    assert "latency.command.p99_ms <= 20: baseline PASS" in out and "run 2 FAIL" in out
    assert "a sweep row keeps no telemetry" in err
    assert (tmp_path / "c" / "compare.md").exists()


@pytest.mark.parametrize("rows", ["3", "0", "x", "1,"])
def test_a_row_the_sweep_does_not_have_is_bad_input(swept: Path, rows: str) -> None:
    rc, _, err = _main([str(swept), f"{swept}#{rows}"])
    assert rc == 2 and "is not a row of 1..2" in err
