"""The run log: samples from any replica in any order come out once, in time order, on disk as
the run goes; a file cut short by a killed writer still reads."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import twin
from twin.observe.runlog import REORDER_S, RunLog
from twin.observe.telemetry import Telemetry

PAN_TILT = Path(__file__).resolve().parents[3] / "scenarios" / "pan_tilt.yaml"


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.permutations(list(range(4))), min_size=10, max_size=10),
    st.lists(st.integers(0, 39), max_size=10),
)
def test_shuffled_and_repeated_samples_come_out_once_in_order(
    blocks: list[list[int]], again: list[int]
) -> None:
    # Samples 0.1 s apart arrive shuffled within blocks of four: never more than 0.3 s out of
    # order, inside the reorder window; some come twice (a redelivery, another replica).
    assert REORDER_S > 0.3
    order = [4 * b + k for b, block in enumerate(blocks) for k in block]
    log = RunLog(["a"])
    for k in order + again:
        log.sample(k * 0.1, [float(k)], [0.0])
    log.finish()
    t, goal, _ = log.telemetry().arrays()
    assert np.allclose(t, np.arange(40) * 0.1) and np.allclose(goal[:, 0], np.arange(40))
    assert log.duplicates == len(again) and log.late_samples == 0
    assert log.tracking.samples == 40 and log.tracking.max_abs[0] == 39.0


def test_a_sample_later_than_the_window_is_kept_and_counted() -> None:
    log = RunLog(["a"])
    for k in range(100):
        log.sample(k * 0.1, [0.0], [0.0])
    log.sample(0.05, [1.0], [0.0])  # 9.9 s late: its place was written long ago
    log.finish()
    assert log.late_samples == 1 and log.tracking.samples == 101 and log.tracking.max_abs[0] == 1.0
    t, _, _ = log.telemetry().arrays()
    assert list(t[:3]) == [0.0, 0.05, 0.1], "read back in time order"


def test_a_joint_without_a_reading_does_not_count_in_its_tracking_error() -> None:
    log = RunLog(["a", "b"])
    log.sample(0.0, [0.1, 0.2], [0.0, 0.1])
    log.sample(0.1, [0.1, 0.2], [0.0, float("nan")])  # servo b failed: nothing measured
    log.finish()
    assert log.tracking.counts == [2, 1] and abs(log.tracking.max_abs[1] - 0.1) < 1e-12


def test_streamed_files_are_flushed_as_the_run_goes(tmp_path: Path) -> None:
    now = [0.0]
    log = RunLog(["a", "b"], tmp_path, wall_clock=lambda: now[0])
    for k in range(200):
        log.sample(k * 0.1, [0.1, 0.2], [0.0, 0.0])
    log.event(3.0, "alarm", servo=1, what="overheat")
    now[0] = 1.0  # past the flush interval: the next sample flushes
    log.sample(20.0, [0.0, 0.0], [0.0, 0.0])
    on_disk = Telemetry.from_csv(tmp_path / "telemetry.csv")
    final = sum(1 for k in range(200) if k * 0.1 < 20.0 - REORDER_S)  # let go by the reorder window
    assert len(on_disk) == final
    assert '"kind": "alarm"' in (tmp_path / "events.jsonl").read_text()
    log.close()
    assert len(Telemetry.from_csv(tmp_path / "telemetry.csv")) == 201


def test_a_last_line_cut_short_is_left_out_and_the_rest_reads(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.csv"
    path.write_text("t_s,a_goal_rad,a_actual_rad\n0.000000,0.1,0.2\n0.010000,0.1,0.2\n0.0200")
    t, goal, _ = Telemetry.from_csv(path).arrays()
    assert list(t) == [0.0, 0.01] and goal.shape == (2, 1)


def test_a_streamed_run_writes_the_same_bytes_as_one_written_at_the_end(tmp_path: Path) -> None:
    scenario = twin.load(PAN_TILT, ["duration=3"])
    twin.run(scenario).write(tmp_path / "after")
    twin.run(scenario, out=tmp_path / "streamed")
    for name in ("telemetry.csv", "metrics.json", "events.jsonl", "trace.json"):
        assert (tmp_path / "after" / name).read_bytes() == (tmp_path / "streamed" / name).read_bytes(), name


def test_a_plot_interrupted_while_being_written_leaves_the_old_file_whole(tmp_path: Path) -> None:
    from twin.observe import plots

    tel = Telemetry(["a"])
    tel.append(0.0, [0.0], [0.0])
    tel.append(1.0, [1.0], [0.5])
    path = plots.plot_tracking(tel, tmp_path / "tracking.png", "first")
    before = path.read_bytes()

    class Killed(BaseException):  # what a signal raising in the middle of savefig looks like
        pass

    from matplotlib.figure import Figure

    original = Figure.savefig

    def dies_half_way(self: Figure, fname: object, **kwargs: object) -> None:
        Path(str(fname)).write_bytes(b"\x89PNG half")
        raise Killed

    Figure.savefig = dies_half_way  # type: ignore[method-assign]
    try:
        with contextlib.suppress(Killed):
            plots.plot_tracking(tel, path, "second")
    finally:
        Figure.savefig = original  # type: ignore[method-assign]
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["tracking.png"], "no temporary file left behind"


def test_the_trace_keeps_its_first_records_and_counts_the_rest() -> None:
    result = twin.run(twin.load(PAN_TILT, ["duration=5", "outputs.trace_limit=300"]))
    tracer = result.tracer
    assert len(tracer) + len(tracer._instants) == 300 and tracer.dropped > 100
    assert tracer.to_chrome()["otherData"] == {"not_traced": tracer.dropped, "limit": 300}
    assert any(e["kind"] == "trace_limit" for e in result.log.events)
