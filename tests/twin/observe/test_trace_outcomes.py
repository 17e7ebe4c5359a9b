"""Tests of span outcomes and one-way messages in twin.observe.trace."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.observe.trace import OUTCOMES, Tracer, to_micros


def _events(tr: Tracer, ph: str | None = None) -> list[dict[str, Any]]:
    return [e for e in tr.to_chrome()["traceEvents"] if ph is None or e["ph"] == ph]


def _threads(tr: Tracer) -> dict[tuple[int, int], str]:
    procs = {e["pid"]: e["args"]["name"] for e in _events(tr, "M") if e["name"] == "process_name"}
    return {
        (e["pid"], e["tid"]): f"{procs[e['pid']]}/{e['args']['name']}"
        for e in _events(tr, "M")
        if e["name"] == "thread_name"
    }


def _innermost(slices: list[dict[str, Any]], pid: int, tid: int, ts: int) -> dict[str, Any] | None:
    """The slice Perfetto binds a flow event at ``ts`` to: the shortest one holding ``ts``."""
    holding = [s for s in slices if (s["pid"], s["tid"]) == (pid, tid) and s["ts"] <= ts < s["ts"] + s["dur"]]
    return min(holding, key=lambda s: s["dur"]) if holding else None


def _assert_nested(tr: Tracer) -> None:
    """Slices on a track never overlap partly: any two are disjoint or one holds the other."""
    by_track: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for e in _events(tr, "X"):
        by_track.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"]))
    for spans in by_track.values():
        for i, (a0, a1) in enumerate(spans):
            for b0, b1 in spans[i + 1 :]:
                disjoint = a1 <= b0 or b1 <= a0
                nested = (a0 <= b0 and b1 <= a1) or (b0 <= a0 and a1 <= b1)
                assert disjoint or nested, ((a0, a1), (b0, b1))
                assert (a0, a1) != (b0, b1)  # identical slices would nest ambiguously


def _assert_flows_bind(tr: Tracer) -> None:
    """Every flow pair is complete, and each end binds to the slice it was recorded for."""
    slices = _events(tr, "X")
    by_id = {e["args"]["span_id"]: e for e in slices if e["cat"] == "span"}
    starts = {e["id"]: e for e in _events(tr, "s")}
    finishes = {e["id"]: e for e in _events(tr, "f")}
    assert set(starts) == set(finishes)
    for fid, s in starts.items():
        f = finishes[fid]
        assert f["bp"] == "e" and s["name"] == f["name"] and s["cat"] == f["cat"]
        child = by_id[fid]
        assert _innermost(slices, f["pid"], f["tid"], f["ts"]) is child
        origin = _innermost(slices, s["pid"], s["tid"], s["ts"])
        assert origin is not None
        if "src_service" in child["args"]:  # a message: from the sender's send slice
            assert origin["cat"] == "send" and fid in origin["args"]["span_ids"]
            assert origin["args"]["service"] == child["args"]["src_service"]
            assert origin["ts"] == child["ts"]
        else:
            assert origin is by_id[child["args"]["parent"]]


# --- outcomes --------------------------------------------------------------------------


def test_outcome_is_in_args_and_failed_spans_say_so_in_their_name() -> None:
    tr = Tracer()
    ok = tr.span("move", "planner", "edge", 0.0, 0.001, trace_id=1)
    late = tr.span("move", "planner", "edge", 0.002, 0.003, trace_id=2, outcome="timeout", parent=ok)
    x = {e["args"]["span_id"]: e for e in _events(tr, "X")}
    assert x[ok]["name"] == "move" and x[ok]["args"]["outcome"] == "ok"
    assert x[late]["name"] == "move (timeout)" and x[late]["args"]["outcome"] == "timeout"
    (s,) = _events(tr, "s")
    assert s["name"] == "planner -> planner"  # flows keep the service names, not the outcome


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_every_outcome_is_accepted(outcome: str) -> None:
    tr = Tracer()
    tr.span("write", "driver", "edge", 0.0, 1.0, trace_id=1, outcome=outcome)
    (ev,) = _events(tr, "X")
    assert ev["args"]["outcome"] == outcome
    assert ev["name"] == ("write" if outcome == "ok" else f"write ({outcome})")


@pytest.mark.parametrize("outcome", ["failed", "OK", "", None, 3])
def test_unknown_outcome_is_refused_when_recorded(outcome: Any) -> None:
    tr = Tracer()
    with pytest.raises(ValueError, match="outcome must be one of"):
        tr.span("x", "s", "n", 0.0, 1.0, trace_id=1, outcome=outcome)
    with pytest.raises(ValueError, match="outcome must be one of"):
        tr.message("x", "a", "n", "b", "n", 0.0, 1.0, outcome=outcome)
    assert len(tr) == 0 and _events(tr) == []


def test_outcome_and_message_keys_are_reserved_in_args() -> None:
    tr = Tracer()
    for key in ("outcome", "src_service", "dst_node"):
        with pytest.raises(ValueError, match="reserved"):
            tr.span("x", "s", "n", 0.0, 1.0, trace_id=1, args={key: 1})
        with pytest.raises(ValueError, match="reserved"):
            tr.message("x", "a", "n", "b", "n", 0.0, 1.0, args={key: 1})
    with pytest.raises(TypeError, match="mapping"):
        tr.span("x", "s", "n", 0.0, 1.0, trace_id=1, args=[("k", 1)])  # type: ignore[arg-type]


def test_args_are_copied_when_recorded() -> None:
    tr = Tracer()
    args = {"attempt": 1}
    tr.span("x", "s", "n", 0.0, 1.0, trace_id=1, args=args)
    args["attempt"] = 2
    args["extra"] = True
    (ev,) = _events(tr, "X")
    assert ev["args"]["attempt"] == 1 and "extra" not in ev["args"]


# --- messages --------------------------------------------------------------------------


def test_delivered_message_is_a_span_on_the_receiver_with_a_flow_from_the_sender() -> None:
    tr = Tracer()
    sid = tr.message(
        "joint_states", "driver", "edge", "telemetry", "cloud", 1.0, 1.0025, trace_id=7, args={"seq": 4}
    )
    assert isinstance(sid, int) and len(tr) == 1
    threads = _threads(tr)
    spans = [e for e in _events(tr, "X") if e["cat"] == "span"]
    sends = [e for e in _events(tr, "X") if e["cat"] == "send"]
    (span,) = spans
    (send,) = sends
    assert threads[(span["pid"], span["tid"])] == "cloud/telemetry"
    assert (span["ts"], span["dur"], span["name"]) == (1_000_000, 2_500, "joint_states")
    assert span["args"] == {
        "seq": 4,
        "trace_id": 7,
        "span_id": sid,
        "parent": None,
        "service": "telemetry",
        "node": "cloud",
        "outcome": "ok",
        "src_service": "driver",
        "src_node": "edge",
    }
    assert threads[(send["pid"], send["tid"])] == "edge/driver"
    assert (send["ts"], send["dur"], send["name"]) == (1_000_000, 1, "send joint_states")
    (s,) = _events(tr, "s")
    (f,) = _events(tr, "f")
    assert s["id"] == f["id"] == sid and s["name"] == "driver -> telemetry"
    assert (s["pid"], s["tid"], s["ts"]) == (send["pid"], send["tid"], 1_000_000)
    assert (f["pid"], f["tid"], f["ts"]) == (span["pid"], span["tid"], 1_000_000)
    _assert_flows_bind(tr)


def test_messages_sent_together_share_one_send_slice() -> None:
    tr = Tracer()
    a = tr.message("joint_states", "driver", "edge", "planner", "edge", 0.5, 0.5001)
    b = tr.message("joint_states", "driver", "edge", "telemetry", "cloud", 0.5, 0.502)
    c = tr.message("alarms", "driver", "edge", "operator", "ctrl", 0.5, 0.503)
    sends = [e for e in _events(tr, "X") if e["cat"] == "send"]
    (send,) = sends
    assert send["name"] == "send alarms, joint_states"
    assert send["args"]["messages"] == 3 and send["args"]["span_ids"] == [a, b, c]
    assert len(_events(tr, "s")) == 3
    _assert_flows_bind(tr)


def test_send_slice_nests_in_the_senders_span_and_keeps_off_other_flow_ends() -> None:
    tr = Tracer()
    cycle = tr.span("cycle", "driver", "edge", 0.0, 0.010, trace_id=1)
    tr.message("joint_states", "driver", "edge", "planner", "edge", 0.004, 0.0041)
    # At 6 ms the cycle's flow to its child starts on the first track and the child (on the
    # second) begins: a send slice on either would capture that flow end, so it gets a third.
    tr.span("write", "driver", "edge", 0.006, 0.007, trace_id=1, parent=cycle)
    tr.message("joint_states", "driver", "edge", "planner", "edge", 0.006, 0.0061)
    _assert_nested(tr)
    _assert_flows_bind(tr)
    threads = _threads(tr)
    send_tracks = sorted(threads[(e["pid"], e["tid"])] for e in _events(tr, "X") if e["cat"] == "send")
    assert send_tracks == ["edge/driver", "edge/driver (3)"]
    first = min((e for e in _events(tr, "X") if e["cat"] == "send"), key=lambda e: e["ts"])
    assert first["ts"] == 4_000  # nested in the cycle, on its track


def test_lost_message_is_an_instant_on_the_sender() -> None:
    tr = Tracer()
    assert tr.message("heartbeat", "planner", "edge", "registry", "ctrl", 2.0, None, outcome="lost") is None
    assert len(tr) == 0
    (ev,) = _events(tr, "i")
    assert _threads(tr)[(ev["pid"], ev["tid"])] == "edge/planner"
    assert ev["name"] == "heartbeat (lost)" and ev["ts"] == 2_000_000
    assert ev["args"]["outcome"] == "lost" and ev["args"]["dst_service"] == "registry"
    assert ev["args"]["dst_node"] == "ctrl"
    assert _events(tr, "s") == [] and _events(tr, "X") == []
    with pytest.raises(ValueError, match="never arrived"):
        tr.message("heartbeat", "planner", "edge", "registry", "ctrl", 2.0, None)


def test_dropped_message_that_arrived_is_a_failed_span() -> None:
    tr = Tracer()
    tr.message("frames", "camera", "edge", "planner", "edge", 0.1, 0.1004, outcome="dropped")
    (span,) = [e for e in _events(tr, "X") if e["cat"] == "span"]
    assert span["name"] == "frames (dropped)" and span["args"]["outcome"] == "dropped"


def test_bad_messages_are_refused() -> None:
    tr = Tracer()
    with pytest.raises(ValueError, match="before it starts"):
        tr.message("m", "a", "n", "b", "n", 2.0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        tr.message("m", "a", "n", "b", "n", float("nan"), 1.0)
    with pytest.raises(ValueError, match="finite"):
        tr.message("m", "a", "n", "b", "n", float("inf"), None, outcome="lost")
    with pytest.raises(TypeError):
        tr.message("m", "a", "n", "b", "n", "0", 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tr.message("m", "a", "n", "b", "n", 0.0, 1.0, trace_id=1.5)  # type: ignore[arg-type]
    assert len(tr) == 0 and _events(tr) == []


NAMES = ["driver", "planner", "registry"]

record = st.one_of(
    st.tuples(
        st.just("span"),
        st.sampled_from(NAMES),
        st.integers(0, 40),  # start, in units of 50 µs so that times coincide often
        st.integers(0, 10),
        st.sampled_from(OUTCOMES),
        st.integers(0, 30),  # parent pick
    ),
    st.tuples(
        st.just("message"),
        st.sampled_from(NAMES),
        st.integers(0, 40),
        st.integers(0, 10),
        st.sampled_from(["ok", "dropped", "lost"]),
        st.sampled_from(NAMES),
    ),
)


@settings(max_examples=150, deadline=None)
@given(records=st.lists(record, min_size=1, max_size=30))
def test_random_spans_and_messages_nest_and_every_flow_binds_where_meant(
    records: list[tuple[Any, ...]],
) -> None:
    tr = Tracer()
    ids: list[int] = []
    for kind, service, start, length, outcome, extra in records:
        t0, t1 = start * 50e-6, (start + length) * 50e-6
        if kind == "span":
            parent = ids[extra % len(ids)] if ids and extra % 3 else None
            ids.append(tr.span("op", service, "n", t0, t1, trace_id=1, parent=parent, outcome=outcome))
        else:
            arrived = None if outcome == "lost" else t1
            sid = tr.message("ev", service, "n", extra, "n", t0, arrived, outcome=outcome)
            if sid is not None:
                ids.append(sid)
    _assert_nested(tr)
    _assert_flows_bind(tr)
    assert json.loads(tr.to_json()) == tr.to_chrome()


def test_deterministic_bytes_with_messages(tmp_path: Path) -> None:
    def build() -> Tracer:
        tr = Tracer()
        op = tr.span("command", "operator", "ctrl", 0.0, 0.004, trace_id=1)
        tr.span("route", "gateway", "ctrl", 0.001, 0.003, trace_id=1, parent=op, outcome="refused")
        tr.message("joint_states", "driver", "edge", "planner", "edge", 0.001, 0.0012, trace_id=3)
        tr.message("heartbeat", "planner", "edge", "registry", "ctrl", 0.002, None, outcome="lost")
        return tr

    a = build().write(tmp_path / "a.json").read_bytes()
    b = build().write(tmp_path / "b.json").read_bytes()
    assert a == b


# --- cost and times --------------------------------------------------------------------


def _exact_micros(t_s: float) -> int:
    return int(Decimal(repr(float(t_s))).scaleb(6).to_integral_value(rounding=ROUND_HALF_EVEN))


@settings(max_examples=500, deadline=None)
@given(
    t=st.one_of(
        st.floats(min_value=-1e7, max_value=1e7, allow_nan=False),
        st.integers(-(10**9), 10**9).map(lambda us: us * 1e-6),
        st.integers(-(10**9), 10**9).map(lambda us: (us + 0.5) * 1e-6),
    )
)
def test_to_micros_fast_path_agrees_with_the_exact_decimal_rounding(t: float) -> None:
    assert to_micros(t) == _exact_micros(t)
