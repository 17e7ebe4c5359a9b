"""A trace of every request in Chrome Trace Event JSON, for the Perfetto UI (ui.perfetto.dev).

The :class:`Tracer` collects one *span* per hop of a request (its service, its node and its
start and end in seconds of simulated time), one *message* per piece of one-way traffic (an
event-bus delivery, a heartbeat) and *instants* such as a breaker changing state.
:meth:`Tracer.to_chrome` maps them onto the Chrome Trace Event format:

* one process (``pid``) per node, named by a ``process_name`` metadata event (``ph "M"``);
* one thread (``tid``) per service *track*, named by a ``thread_name`` metadata event. A
  service whose spans overlap in time (concurrent requests) gets several tracks, "planner",
  "planner (2)", ...: spans are given to the lowest free track greedily in order of start, so
  that no two spans on one thread overlap (Perfetto and the legacy Chrome viewer both need the
  slices of a thread to nest, and unrelated concurrent spans do not);
* spans are complete events (``ph "X"``) with ``ts`` and ``dur`` in integer microseconds; the
  span's *outcome* (``ok``, ``error``, ``timeout``, ``refused``, ``expired``, ``lost`` or
  ``dropped``) is in its ``args``, and a span whose outcome is not ``ok`` is named with it,
  ``"move (timeout)"``, so that a failed hop reads as failed in Perfetto;
* a span with a parent gets a flow arrow: a ``ph "s"`` event on the parent's track, at the
  moment the child starts held inside the parent's extent, and a ``ph "f"`` event with
  ``bp "e"`` on the child's track at the child's start, both with the child's span id as
  ``id``, the same ``cat`` and the same ``name`` (Perfetto pairs v1 flow events on all three);
* a message that arrived is a span on the receiver's track from its sending to its arrival,
  with a flow arrow from a 1 µs ``"send ..."`` slice on the sender's track at the moment of
  sending (a flow must start inside a slice to be drawn). Messages one service sends in the
  same microsecond share that slice. It nests inside whatever span the sender's track shows
  then, on the lowest track where no other slice or flow event starts in that microsecond
  (so that every flow binds to the slice it was meant for);
* a message that never arrived is an instant on the sender's track, named with its outcome;
* instants are thread-scoped instant events (``ph "i"``, ``s "t"``) on the service's first
  track.

Times are converted to microseconds by rounding the decimal value of the float half to even,
the same way everywhere, so a span that ends when the next one starts still touches it rather
than overlapping it; a span shorter than 1 µs is drawn 1 µs long. pids and tids are small
integers (from 1) given in sorted order of node, service and track number, and tids are unique
across the whole trace, so the output depends only on what was recorded, and in what order.

Recording is on the message path, so :meth:`Tracer.span` and :meth:`Tracer.message` check their
arguments with cheap tests and keep them raw; the conversion to microseconds and of ``args`` to
plain JSON happens at export (:meth:`Tracer.to_chrome`, :meth:`Tracer.to_json`,
:meth:`Tracer.write`). Every check that can fail still fails when recording; only the values
*inside* ``args`` are read at export, so a caller must not change them after recording.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from twin.observe.files import write_text_atomic

__all__ = ["OUTCOMES", "Tracer", "to_micros"]

SPAN_CATEGORY = "span"
"""``cat`` of the complete events."""
FLOW_CATEGORY = "flow"
"""``cat`` of the flow events (``s`` and ``f``)."""
INSTANT_CATEGORY = "instant"
"""``cat`` of the instant events."""
SEND_CATEGORY = "send"
"""``cat`` of the 1 µs slices marking where messages were sent."""

OUTCOMES = ("ok", "error", "timeout", "refused", "expired", "lost", "dropped")
"""What became of a hop or a message."""
_OUTCOME_SET = frozenset(OUTCOMES)

_RESERVED_ARGS = frozenset(
    {
        "trace_id",
        "span_id",
        "parent",
        "service",
        "node",
        "outcome",
        "src_service",
        "src_node",
        "dst_service",
        "dst_node",
    }
)
_INF = math.inf


def to_micros(t_s: float) -> int:
    """``t_s`` seconds as whole microseconds, the decimal value rounded half to even.

    ``Decimal(repr(t_s))`` is the shortest decimal that reads back as ``t_s``, so
    ``to_micros(2.5e-6) == 2`` and ``to_micros(3.5e-6) == 4`` whatever the binary error.
    """
    t_s = float(t_s)
    x = t_s * 1e6
    if math.isfinite(x):
        # The decimal value differs from x by a few ulps: unless x is that close to a
        # half, both round to the same integer and the exact (slow) path is not needed.
        below = math.floor(x)
        if abs(x - below - 0.5) > 1e-9 + abs(x) * 1e-12:
            return int(below) + (1 if x - below > 0.5 else 0)
    return int(Decimal(repr(t_s)).scaleb(6).to_integral_value(rounding=ROUND_HALF_EVEN))


def _event(name: str, ph: str, ts: int, pid: int, tid: int, **fields: Any) -> dict[str, Any]:
    return {"name": name, "ph": ph, "ts": ts, "pid": pid, "tid": tid, **fields}


def _check_time(label: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{label} must be a number of seconds, not {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{label} must be finite, got {value!r}")
    return value


def _check_int(label: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{label} must be an int, not {type(value).__name__}")
    return int(value)


def _check_outcome(outcome: Any) -> str:
    if outcome not in _OUTCOME_SET or not isinstance(outcome, str):
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}; got {outcome!r}")
    return outcome


def _interval(name: Any, start_s: Any, end_s: Any) -> tuple[float, float]:
    """Checked ``(start_s, end_s)`` as floats (the slow path of the recording methods)."""
    start_s = _check_time("start_s", start_s)
    end_s = _check_time("end_s", end_s)
    if end_s < start_s:
        raise ValueError(f"span {name!r} ends ({end_s!r} s) before it starts ({start_s!r} s)")
    return start_s, end_s


def _jsonable(value: Any) -> Any:
    """``value`` made into plain JSON: numpy scalars unwrapped, non-finite floats as strings."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):  # in a fixed order, whatever the hash seed
        return sorted((_jsonable(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return _jsonable(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def _user_args(args: Any) -> dict[Any, Any] | None:
    """A shallow copy of ``args`` once its keys are checked; converted to JSON at export."""
    if args is None:
        return None
    if not isinstance(args, Mapping):
        raise TypeError(f"args must be a mapping, not {type(args).__name__}")
    if not _RESERVED_ARGS.isdisjoint(args) or not all(type(k) is str for k in args):
        clash = sorted(str(k) for k in args if str(k) in _RESERVED_ARGS)
        if clash:
            raise ValueError(f"args may not use the reserved keys {clash}")
    return dict(args)


# A recorded span, kept raw: (name, service, node, start_s, end_s, trace_id, parent, args,
# outcome, sender) where sender is (service, node) for a message, else None.
_Args = dict[Any, Any] | None
_RawSpan = tuple[Any, Any, Any, float, float, int, int | None, _Args, str, tuple[Any, Any] | None]
_RawInstant = tuple[Any, Any, Any, float, _Args]
# A span as exported: name, service and node as str, start and end in microseconds.
_Span = tuple[str, str, str, int, int, int, int | None, _Args, str, tuple[Any, Any] | None]


class Tracer:
    """Collects spans, messages and instants of simulated time; exports Chrome Trace Event JSON."""

    def __init__(self, limit: int | None = None) -> None:
        """`limit`: the most spans, messages and instants kept (the first ones); the rest are
        counted in `dropped`, so that a long run's trace does not grow without bound."""
        self._spans: dict[int, _RawSpan] = {}
        self._instants: list[_RawInstant] = []
        self._last_id = 0
        self.limit = limit
        self.dropped = 0

    def _full(self) -> bool:
        if self.limit is None or len(self._spans) + len(self._instants) < self.limit:
            return False
        self.dropped += 1
        return True

    def __len__(self) -> int:
        """The number of spans recorded (a message that arrived counts as one)."""
        return len(self._spans)

    def new_id(self) -> int:
        """Reserve a span id, to be passed later as ``span(..., span_id=...)``.

        Lets a caller hand the id of a request's span to the hops it makes before the request
        itself has ended and been recorded.
        """
        self._last_id += 1
        return self._last_id

    def span(
        self,
        name: str,
        service: str,
        node: str,
        start_s: float,
        end_s: float,
        *,
        trace_id: int,
        parent: int | None = None,
        args: Mapping[str, Any] | None = None,
        span_id: int | None = None,
        outcome: str = "ok",
    ) -> int:
        """Record one hop of a request, from ``start_s`` to ``end_s`` (s, simulated); return its id.

        ``parent`` is the id of the span that caused this one (it may be recorded later, by
        reserving its id with :meth:`new_id`); a parent never recorded gets no flow arrow.
        ``span_id`` is an id reserved with :meth:`new_id` and not used yet; without it a new
        id is taken. ``outcome`` is one of :data:`OUTCOMES` (:class:`ValueError` otherwise);
        it is shown in the args and, unless ``"ok"``, in the name: ``"move (timeout)"``.
        ``args`` are shown with the span and may not use the keys ``trace_id``, ``span_id``,
        ``parent``, ``service``, ``node``, ``outcome``, ``src_service``, ``src_node``,
        ``dst_service`` or ``dst_node``, which the tracer fills in; their values are read when
        the trace is exported.
        """
        # Fast path for the usual float times; anything else gets the full checks and messages.
        if not (type(start_s) is float and type(end_s) is float and -_INF < start_s <= end_s < _INF):
            start_s, end_s = _interval(name, start_s, end_s)
        if type(trace_id) is not int:
            trace_id = _check_int("trace_id", trace_id)
        if parent is not None and type(parent) is not int:
            parent = _check_int("parent", parent)
        if outcome not in _OUTCOME_SET or type(outcome) is not str:
            _check_outcome(outcome)
        if args is not None:
            args = _user_args(args)
        if span_id is None:
            self._last_id += 1
            span_id = self._last_id
        else:
            if type(span_id) is not int:
                span_id = _check_int("span_id", span_id)
            if not 1 <= span_id <= self._last_id:
                raise ValueError(f"span_id {span_id} was not reserved with new_id()")
            if span_id in self._spans:
                raise ValueError(f"span_id {span_id} is already used")
        if parent == span_id:
            raise ValueError(f"span {span_id} cannot be its own parent")
        if self._full():
            return span_id
        self._spans[span_id] = (name, service, node, start_s, end_s, trace_id, parent, args, outcome, None)
        return span_id

    def message(
        self,
        name: str,
        src_service: str,
        src_node: str,
        dst_service: str,
        dst_node: str,
        sent_s: float,
        arrived_s: float | None,
        *,
        outcome: str = "ok",
        trace_id: int = 0,
        args: Mapping[str, Any] | None = None,
    ) -> int | None:
        """Record one-way traffic (an event-bus delivery, a heartbeat); return its span id.

        A message that arrived (``arrived_s`` given) is a span on ``dst_service``'s track from
        ``sent_s`` to ``arrived_s``, with a flow arrow from ``src_service``'s track at
        ``sent_s``; its ``outcome`` says what the receiver made of it (``"dropped"`` from a full
        queue, ``"expired"``...). A message that never arrived (``arrived_s`` None) is an
        instant on ``src_service``'s track at ``sent_s`` and returns None; its outcome cannot
        be ``"ok"``. ``args`` as for :meth:`span`; ``trace_id`` 0 means none.
        """
        if outcome not in _OUTCOME_SET or type(outcome) is not str:
            _check_outcome(outcome)
        if type(trace_id) is not int:
            trace_id = _check_int("trace_id", trace_id)
        if args is not None:
            args = _user_args(args)
        if arrived_s is None:
            if type(sent_s) is not float or not -_INF < sent_s < _INF:
                sent_s = _check_time("sent_s", sent_s)
            if outcome == "ok":
                raise ValueError(f"message {name!r} never arrived, so its outcome cannot be 'ok'")
            if self._full():
                return None
            extra = dict(args) if args else {}
            extra.update(outcome=outcome, trace_id=trace_id, dst_service=dst_service, dst_node=dst_node)
            self._instants.append((f"{name} ({outcome})", src_service, src_node, sent_s, extra))
            return None
        if not (type(sent_s) is float and type(arrived_s) is float and -_INF < sent_s <= arrived_s < _INF):
            sent_s, arrived_s = _interval(name, sent_s, arrived_s)
        self._last_id += 1
        span_id = self._last_id
        if self._full():
            return span_id
        sender = (src_service, src_node)
        self._spans[span_id] = (
            name,
            dst_service,
            dst_node,
            sent_s,
            arrived_s,
            trace_id,
            None,
            args,
            outcome,
            sender,
        )
        return span_id

    def instant(
        self,
        name: str,
        service: str,
        node: str,
        t_s: float,
        args: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a moment on ``service``'s track, e.g. a breaker changing state."""
        t_s = _check_time("t_s", t_s)
        args = _user_args(args)
        if self._full():
            return
        self._instants.append((name, service, node, t_s, args))

    # --- export -------------------------------------------------------------------------

    def to_chrome(self) -> dict[str, Any]:
        """The trace as a Chrome Trace Event object ``{"traceEvents": [...], "displayTimeUnit": "ms"}``."""
        spans: dict[int, _Span] = {
            sid: (str(nm), str(svc), str(nd), to_micros(t0), to_micros(t1), tr, par, a, oc, snd)
            for sid, (nm, svc, nd, t0, t1, tr, par, a, oc, snd) in self._spans.items()
        }

        # Lanes: greedy interval colouring per (node, service), in order of start.
        by_service: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
        for sid, sp in spans.items():
            by_service.setdefault((sp[2], sp[1]), []).append((sp[3], sp[4], sid))
        lane_of: dict[int, tuple[str, str, int]] = {}
        n_lanes: dict[tuple[str, str], int] = {}
        for (node, service), items in by_service.items():
            lane_ends: list[int] = []  # last busy microsecond (exclusive) of each lane
            for ts, end, sid in sorted(items):
                stop = ts + max(1, end - ts)
                for lane, busy_until in enumerate(lane_ends):
                    if busy_until <= ts:
                        lane_ends[lane] = stop
                        break
                else:
                    lane = len(lane_ends)
                    lane_ends.append(stop)
                lane_of[sid] = (node, service, lane)
            n_lanes[(node, service)] = len(lane_ends)

        # Flow starts of parent -> child spans, and where slices start: a send slice keeps off both.
        # child span id -> (parent span id, flow start (µs) on the parent's track)
        flow_from: dict[int, tuple[int, int]] = {}
        busy: set[tuple[tuple[str, str, int], int]] = {(lane_of[sid], sp[3]) for sid, sp in spans.items()}
        for sid, sp in spans.items():
            parent = sp[6]
            if parent is None or parent not in spans:
                continue
            p = spans[parent]
            p_dur = max(1, p[4] - p[3])
            # The start must lie inside the parent's slice for Perfetto to bind it there.
            s_ts = min(max(sp[3], p[3]), p[3] + p_dur - 1)
            flow_from[sid] = (parent, s_ts)
            busy.add((lane_of[parent], s_ts))

        # Send slices: one per (sender node, sender service, microsecond), in order of span id.
        sends: dict[tuple[str, str, int], list[int]] = {}
        for sid, sp in spans.items():
            if sp[9] is not None:
                sends.setdefault((str(sp[9][1]), str(sp[9][0]), sp[3]), []).append(sid)
        send_lane: dict[tuple[str, str, int], tuple[str, str, int]] = {}
        for key in sorted(sends):
            node, service, ts = key
            lane = 0
            while ((node, service, lane), ts) in busy:
                lane += 1
            n_lanes[(node, service)] = max(n_lanes.get((node, service), 0), lane + 1)
            busy.add(((node, service, lane), ts))
            send_lane[key] = (node, service, lane)

        instants = [(str(nm), str(svc), str(nd), to_micros(t), a) for nm, svc, nd, t, a in self._instants]
        for _, svc, nd, _, _ in instants:
            n_lanes.setdefault((nd, svc), 1)
        tracks = sorted((node, service, lane) for (node, service), n in n_lanes.items() for lane in range(n))
        nodes = sorted({node for node, _, _ in tracks})
        pid_of = {node: k for k, node in enumerate(nodes, start=1)}
        tid_of = {track: k for k, track in enumerate(tracks, start=1)}

        meta: list[dict[str, Any]] = []
        for node in nodes:
            meta.append(_event("process_name", "M", 0, pid_of[node], 0, args={"name": node}))
        for track in tracks:
            node, service, lane = track
            label = service if lane == 0 else f"{service} ({lane + 1})"
            meta.append(_event("thread_name", "M", 0, pid_of[node], tid_of[track], args={"name": label}))

        # (sort key, event): by time; at one time, enclosing slices before the slices they hold
        # and slices before the flow events bound to them.
        timed: list[tuple[tuple[int, ...], dict[str, Any]]] = []
        placed: dict[int, tuple[int, int, int]] = {}  # span id -> (pid, tid, ts)
        for sid, (name, service, node, ts, end, trace_id, parent, args, outcome, sender) in spans.items():
            track = lane_of[sid]
            pid, tid = pid_of[node], tid_of[track]
            dur = max(1, end - ts)
            placed[sid] = (pid, tid, ts)
            extra = _jsonable(args) if args else {}
            extra.update(trace_id=trace_id, span_id=sid, parent=parent, service=service, node=node)
            extra["outcome"] = outcome
            if sender is not None:
                extra.update(src_service=str(sender[0]), src_node=str(sender[1]))
            shown = name if outcome == "ok" else f"{name} ({outcome})"
            ev = _event(shown, "X", ts, pid, tid, cat=SPAN_CATEGORY, dur=dur, args=extra)
            timed.append(((ts, 0, pid, tid, -dur, sid), ev))
        for sid, (parent_id, s_ts) in flow_from.items():
            child = spans[sid]
            p_pid, p_tid, _ = placed[parent_id]
            c_pid, c_tid, c_ts = placed[sid]
            flow = f"{spans[parent_id][1]} -> {child[1]}"
            ev = _event(flow, "s", s_ts, p_pid, p_tid, cat=FLOW_CATEGORY, id=sid)
            timed.append(((s_ts, 1, p_pid, p_tid, 0, sid), ev))
            ev = _event(flow, "f", c_ts, c_pid, c_tid, cat=FLOW_CATEGORY, id=sid, bp="e")
            timed.append(((c_ts, 2, c_pid, c_tid, 0, sid), ev))
        for key, ids in sends.items():
            node, service, ts = key
            pid, tid = pid_of[node], tid_of[send_lane[key]]
            names = sorted({spans[sid][0] for sid in ids})
            args = {"service": service, "node": node, "messages": len(ids), "span_ids": ids}
            ev = _event("send " + ", ".join(names), "X", ts, pid, tid, cat=SEND_CATEGORY, dur=1, args=args)
            timed.append(((ts, 0, pid, tid, -1, 0), ev))
            for sid in ids:
                flow = f"{service} -> {spans[sid][1]}"
                c_pid, c_tid, c_ts = placed[sid]
                ev = _event(flow, "s", ts, pid, tid, cat=FLOW_CATEGORY, id=sid)
                timed.append(((ts, 1, pid, tid, 0, sid), ev))
                ev = _event(flow, "f", c_ts, c_pid, c_tid, cat=FLOW_CATEGORY, id=sid, bp="e")
                timed.append(((c_ts, 2, c_pid, c_tid, 0, sid), ev))
        for k, (name, service, node, ts, args) in enumerate(instants):
            pid, tid = pid_of[node], tid_of[(node, service, 0)]
            extra = _jsonable(args) if args else {}
            extra.update(service=service, node=node)
            ev = _event(name, "i", ts, pid, tid, cat=INSTANT_CATEGORY, s="t", args=extra)
            timed.append(((ts, 3, pid, tid, 0, k), ev))

        timed.sort(key=lambda item: item[0])
        out: dict[str, Any] = {"traceEvents": meta + [ev for _, ev in timed], "displayTimeUnit": "ms"}
        if self.dropped:
            out["otherData"] = {"not_traced": self.dropped, "limit": self.limit}
        return out

    def to_json(self) -> str:
        """:meth:`to_chrome` as compact JSON with sorted keys, ending in a newline."""
        return json.dumps(self.to_chrome(), sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"

    def write(self, path: Path) -> Path:
        """Write :meth:`to_json` to ``path`` atomically (creating its folder); return ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, self.to_json())
        return path
