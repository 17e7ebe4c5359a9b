"""Tests of twin.observe.trace: request spans as Chrome Trace Event JSON for Perfetto."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.observe.trace import Tracer, to_micros

REQUIRED = ("name", "ph", "ts", "pid", "tid")


def _request_tracer() -> Tracer:
    """Two overlapping requests operator → gateway → planner → driver, and a breaker instant."""
    tr = Tracer()
    for k, t0 in enumerate((0.100, 0.1015)):
        trace_id = k + 1
        op = tr.span("command", "operator", "ops", t0, t0 + 0.010, trace_id=trace_id)
        gw = tr.span("route", "gateway", "robot", t0 + 0.002, t0 + 0.008, trace_id=trace_id, parent=op)
        pl = tr.span("plan", "planner", "robot", t0 + 0.0025, t0 + 0.006, trace_id=trace_id, parent=gw)
        tr.span(
            "write", "driver", "robot", t0 + 0.003, t0 + 0.004, trace_id=trace_id, parent=pl, args={"k": k}
        )
    tr.instant("breaker open", "gateway", "robot", 0.2, {"to": "open"})
    return tr


def _events(tr: Tracer, ph: str | None = None) -> list[dict[str, Any]]:
    evs = tr.to_chrome()["traceEvents"]
    return [e for e in evs if ph is None or e["ph"] == ph]


def _names(tr: Tracer) -> tuple[dict[int, str], dict[tuple[int, int], str]]:
    procs = {e["pid"]: e["args"]["name"] for e in _events(tr, "M") if e["name"] == "process_name"}
    threads = {
        (e["pid"], e["tid"]): e["args"]["name"] for e in _events(tr, "M") if e["name"] == "thread_name"
    }
    return procs, threads


def _assert_no_overlap(tr: Tracer) -> None:
    by_track: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for e in _events(tr, "X"):
        by_track[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    for spans in by_track.values():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert end <= start


# --- structure -------------------------------------------------------------------------


def test_top_level_structure() -> None:
    doc = _request_tracer().to_chrome()
    assert set(doc) == {"traceEvents", "displayTimeUnit"}
    assert doc["displayTimeUnit"] == "ms"
    assert isinstance(doc["traceEvents"], list) and doc["traceEvents"]


def test_every_event_has_required_fields_and_integer_times() -> None:
    tr = _request_tracer()
    events = _events(tr)
    assert {e["ph"] for e in events} == {"M", "X", "s", "f", "i"}
    for e in events:
        for key in REQUIRED:
            assert key in e, (key, e)
        assert isinstance(e["name"], str) and e["name"]
        for key in ("ts", "pid", "tid"):
            assert type(e[key]) is int
        if e["ph"] == "X":
            assert type(e["dur"]) is int and e["dur"] >= 1
    x = {e["args"]["span_id"]: e for e in _events(tr, "X")}
    assert x[1]["ts"] == 100_000 and x[1]["dur"] == 10_000
    assert x[5]["ts"] == 101_500  # the second request, 1.5 ms later


def test_metadata_names_every_process_and_thread() -> None:
    tr = _request_tracer()
    procs, threads = _names(tr)
    assert procs == {1: "ops", 2: "robot"}  # pids in sorted order of node name
    for e in _events(tr):
        if e["ph"] != "M":
            assert e["pid"] in procs
            assert (e["pid"], e["tid"]) in threads
    # The overlapping requests need a second track for each service busy with both at once
    # (the driver's writes do not overlap).
    assert threads == {
        (1, 1): "operator",
        (1, 2): "operator (2)",
        (2, 3): "driver",
        (2, 4): "gateway",
        (2, 5): "gateway (2)",
        (2, 6): "planner",
        (2, 7): "planner (2)",
    }
    tids = [tid for _, tid in sorted(threads, key=lambda pt: pt[1])]
    assert tids == list(range(1, len(tids) + 1))  # small, unique across the trace


def test_spans_carry_ids_and_args() -> None:
    tr = _request_tracer()
    procs, threads = _names(tr)
    for e in _events(tr, "X"):
        args = e["args"]
        assert {"trace_id", "span_id", "parent", "service", "node"} <= set(args)
        assert procs[e["pid"]] == args["node"]
        assert threads[(e["pid"], e["tid"])].split(" (")[0] == args["service"]
    write = [e for e in _events(tr, "X") if e["name"] == "write"]
    assert [(e["args"]["k"], e["args"]["trace_id"], e["args"]["parent"]) for e in write] == [
        (0, 1, 3),
        (1, 2, 7),
    ]


def test_instant_events() -> None:
    tr = _request_tracer()
    (ev,) = _events(tr, "i")
    _, threads = _names(tr)
    assert ev["s"] == "t" and ev["ts"] == 200_000 and ev["name"] == "breaker open"
    assert threads[(ev["pid"], ev["tid"])] == "gateway"
    assert ev["args"]["to"] == "open"


def test_instant_of_a_service_without_spans_gets_a_track() -> None:
    tr = Tracer()
    tr.instant("boot", "watchdog", "edge", 0.0)
    procs, threads = _names(tr)
    (ev,) = _events(tr, "i")
    assert procs[ev["pid"]] == "edge" and threads[(ev["pid"], ev["tid"])] == "watchdog"


# --- flows -----------------------------------------------------------------------------


def _assert_flows_paired(tr: Tracer) -> None:
    starts = {e["id"]: e for e in _events(tr, "s")}
    finishes = {e["id"]: e for e in _events(tr, "f")}
    assert set(starts) == set(finishes)
    spans = {e["args"]["span_id"]: e for e in _events(tr, "X")}
    for fid, s in starts.items():
        f = finishes[fid]
        assert f["bp"] == "e"
        assert s["cat"] == f["cat"] and s["name"] == f["name"]
        child = spans[fid]
        parent = spans[child["args"]["parent"]]
        # "f" on the child's track at its start; "s" on the parent's track inside the parent.
        assert (f["pid"], f["tid"], f["ts"]) == (child["pid"], child["tid"], child["ts"])
        assert (s["pid"], s["tid"]) == (parent["pid"], parent["tid"])
        assert parent["ts"] <= s["ts"] < parent["ts"] + parent["dur"]


def test_flow_events_are_paired() -> None:
    tr = _request_tracer()
    _assert_flows_paired(tr)
    assert len(_events(tr, "s")) == 6  # three hops per request
    ids = [e["id"] for e in _events(tr, "s")]
    assert len(ids) == len(set(ids))


def test_flow_start_at_the_hop_send_time_inside_the_parent() -> None:
    tr = Tracer()
    a = tr.span("req", "gateway", "robot", 1.0, 2.0, trace_id=1)
    tr.span("hop", "planner", "robot", 1.25, 1.5, trace_id=1, parent=a)
    tr.span("late", "planner", "robot", 3.0, 3.5, trace_id=1, parent=a)  # after the parent ended
    (s1, s2) = sorted(_events(tr, "s"), key=lambda e: e["id"])
    assert s1["ts"] == 1_250_000
    assert s2["ts"] == 1_999_999  # held inside the parent
    _assert_flows_paired(tr)


def test_parent_recorded_after_child_with_reserved_id() -> None:
    tr = Tracer()
    parent = tr.new_id()
    child = tr.span("plan", "planner", "robot", 0.2, 0.3, trace_id=9, parent=parent)
    assert tr.span("cmd", "gateway", "robot", 0.1, 0.5, trace_id=9, span_id=parent) == parent
    assert child != parent and len(tr) == 2
    _assert_flows_paired(tr)
    assert len(_events(tr, "f")) == 1


def test_unknown_parent_gets_no_flow() -> None:
    tr = Tracer()
    tr.span("orphan", "planner", "robot", 0.0, 1.0, trace_id=1, parent=42)
    assert _events(tr, "s") == [] and _events(tr, "f") == []
    assert _events(tr, "X")[0]["args"]["parent"] == 42


def test_slice_sorts_before_flow_events_at_the_same_time() -> None:
    tr = Tracer()
    a = tr.span("req", "gateway", "robot", 1.0, 2.0, trace_id=1)
    tr.span("hop", "planner", "robot", 1.0, 1.5, trace_id=1, parent=a)
    order = [e["ph"] for e in _events(tr) if e["ph"] != "M"]
    assert order == ["X", "X", "s", "f"]


# --- lanes -----------------------------------------------------------------------------


def test_touching_spans_share_a_track_and_zero_length_spans_last_one_microsecond() -> None:
    tr = Tracer()
    tr.span("a", "planner", "robot", 0.0, 0.001, trace_id=1)
    tr.span("b", "planner", "robot", 0.001, 0.002, trace_id=2)  # starts when a ends
    tr.span("z", "planner", "robot", 0.003, 0.003, trace_id=3)
    tr.span("c", "planner", "robot", 0.003, 0.004, trace_id=4)  # starts with the 1 µs z
    _, threads = _names(tr)
    x = {e["name"]: e for e in _events(tr, "X")}
    assert x["z"]["dur"] == 1
    assert x["a"]["tid"] == x["b"]["tid"] == x["z"]["tid"] != x["c"]["tid"]
    assert threads[(x["c"]["pid"], x["c"]["tid"])] == "planner (2)"
    _assert_no_overlap(tr)


def test_same_service_on_two_nodes_gets_two_processes() -> None:
    tr = Tracer()
    tr.span("w", "driver", "left", 0.0, 1.0, trace_id=1)
    tr.span("w", "driver", "right", 0.0, 1.0, trace_id=2)
    procs, threads = _names(tr)
    assert procs == {1: "left", 2: "right"}
    assert sorted(threads.values()) == ["driver", "driver"]
    assert len({e["tid"] for e in _events(tr, "X")}) == 2


def test_more_than_nine_lanes_are_numbered_in_order() -> None:
    tr = Tracer()
    for k in range(12):
        tr.span("p", "planner", "robot", 0.0, 1.0 + k, trace_id=k)
    _, threads = _names(tr)
    ordered = [threads[key] for key in sorted(threads, key=lambda pt: pt[1])]
    assert ordered == ["planner"] + [f"planner ({k})" for k in range(2, 13)]


SERVICES = ["gateway", "planner", "driver"]
NODES = ["ops", "robot"]

span_strategy = st.tuples(
    st.sampled_from(SERVICES),
    st.sampled_from(NODES),
    st.integers(min_value=0, max_value=20_000),  # start, µs
    st.integers(min_value=0, max_value=3_000),  # length, µs
    st.sampled_from([0.0, 1e-7, 4e-7, 5e-7, 6e-7]),  # sub-microsecond jitter, rounds both ways
)


@settings(max_examples=150, deadline=None)
@given(spans=st.lists(span_strategy, min_size=1, max_size=40), parent_picks=st.lists(st.integers(0, 39)))
def test_random_concurrent_spans_never_overlap_on_a_track(
    spans: list[tuple[str, str, int, int, float]], parent_picks: list[int]
) -> None:
    tr = Tracer()
    ids: list[int] = []
    for k, (service, node, start_us, length_us, jitter) in enumerate(spans):
        start = start_us * 1e-6 + jitter
        parent = ids[parent_picks[k] % len(ids)] if ids and k < len(parent_picks) else None
        ids.append(tr.span("op", service, node, start, start + length_us * 1e-6, trace_id=k, parent=parent))
    _assert_no_overlap(tr)
    _assert_flows_paired(tr)
    procs, threads = _names(tr)
    xs = _events(tr, "X")
    assert sorted(e["args"]["span_id"] for e in xs) == sorted(ids)
    for e in xs:  # each span on a track of its own service and node
        assert procs[e["pid"]] == e["args"]["node"]
        name = threads[(e["pid"], e["tid"])]
        assert name == e["args"]["service"] or name.startswith(e["args"]["service"] + " (")
    # Greedy lanes are optimal: a service needs as many tracks as spans overlap at one moment.
    for pid, service in {(e["pid"], e["args"]["service"]) for e in xs}:
        mine = [
            (e["ts"], e["ts"] + e["dur"]) for e in xs if e["pid"] == pid and e["args"]["service"] == service
        ]
        most = max(sum(1 for a, b in mine if a <= t < b) for t, _ in mine)
        lanes = {e["tid"] for e in xs if e["pid"] == pid and e["args"]["service"] == service}
        assert len(lanes) == most
    assert json.loads(tr.to_json()) == tr.to_chrome()


# --- times -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t_s", "us"),
    [
        (0.0, 0),
        (1e-6, 1),
        (2.5e-6, 2),
        (3.5e-6, 4),
        (0.4999e-6, 0),
        (1.234567, 1_234_567),
        (0.1 + 0.2, 300_000),
    ],
)
def test_to_micros_rounds_half_to_even(t_s: float, us: int) -> None:
    assert to_micros(t_s) == us


def test_bad_spans_are_refused() -> None:
    tr = Tracer()
    with pytest.raises(ValueError, match="before it starts"):
        tr.span("x", "s", "n", 2.0, 1.0, trace_id=1)
    with pytest.raises(ValueError, match="finite"):
        tr.span("x", "s", "n", float("nan"), 1.0, trace_id=1)
    with pytest.raises(ValueError, match="finite"):
        tr.instant("x", "s", "n", float("inf"))
    with pytest.raises(ValueError, match="reserved"):
        tr.span("x", "s", "n", 0.0, 1.0, trace_id=1, args={"trace_id": 3})
    with pytest.raises(TypeError):
        tr.span("x", "s", "n", 0.0, 1.0, trace_id="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not reserved"):
        tr.span("x", "s", "n", 0.0, 1.0, trace_id=1, span_id=99)
    sid = tr.span("x", "s", "n", 0.0, 1.0, trace_id=1)
    with pytest.raises(ValueError, match="already used"):
        tr.span("x", "s", "n", 0.0, 1.0, trace_id=1, span_id=sid)
    assert len(tr) == 1


def test_args_are_made_json_safe() -> None:
    np = pytest.importorskip("numpy")
    tr = Tracer()
    args = {"v": np.float64(1.5), "bad": float("nan"), "p": Path("a"), "seq": (1, [2]), "set": {"b", "a"}}
    tr.span("x", "s", "n", np.float32(0.5), 1, trace_id=1, args=args)
    (ev,) = _events(tr, "X")
    assert (ev["ts"], ev["dur"]) == (500_000, 500_000)
    args = ev["args"]
    assert args["v"] == 1.5 and args["bad"] == "nan" and args["p"] == "a"
    assert args["seq"] == [1, [2]] and args["set"] == ["a", "b"]
    json.loads(tr.to_json())


# --- output ----------------------------------------------------------------------------


def test_deterministic_bytes(tmp_path: Path) -> None:
    a = _request_tracer().write(tmp_path / "a.json")
    b = _request_tracer().write(tmp_path / "b.json")
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text()
    assert text.endswith("\n") and "\n" not in text[:-1]
    keys = list(json.loads(text)["traceEvents"][0])
    assert keys == sorted(keys)  # sorted keys


def test_json_round_trip(tmp_path: Path) -> None:
    tr = _request_tracer()
    path = tr.write(tmp_path / "deep" / "trace.json")
    assert path == tmp_path / "deep" / "trace.json"
    assert json.loads(path.read_text(encoding="utf-8")) == tr.to_chrome()
    assert json.loads(json.dumps(tr.to_chrome())) == tr.to_chrome()


def test_empty_tracer() -> None:
    doc = Tracer().to_chrome()
    assert doc == {"traceEvents": [], "displayTimeUnit": "ms"}


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "trace.json"
    path.write_text("old")
    tr = _request_tracer()
    tr.write(path)
    assert json.loads(path.read_text()) == tr.to_chrome()
    assert os.listdir(tmp_path) == ["trace.json"]  # no temporary file left behind

    def fail(*_: object) -> None:
        raise OSError("disk full")

    before = path.read_bytes()
    tr.instant("more", "gateway", "robot", 1.0)
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        tr.write(path)
    assert path.read_bytes() == before  # the old file is whole
    assert os.listdir(tmp_path) == ["trace.json"]
