"""A trace of every request in Chrome Trace Event JSON, for the Perfetto UI (ui.perfetto.dev).

The :class:`Tracer` collects one *span* per hop of a request (its service, its node and its
start and end in seconds of simulated time) and *instants* such as a breaker changing state.
:meth:`Tracer.to_chrome` maps them onto the Chrome Trace Event format:

* one process (``pid``) per node, named by a ``process_name`` metadata event (``ph "M"``);
* one thread (``tid``) per service *track*, named by a ``thread_name`` metadata event. A
  service whose spans overlap in time (concurrent requests) gets several tracks, "planner",
  "planner (2)", ...: spans are given to the lowest free track greedily in order of start, so
  that no two complete events on one thread overlap (Perfetto and the legacy Chrome viewer
  both need the slices of a thread to nest, and unrelated concurrent spans do not);
* spans are complete events (``ph "X"``) with ``ts`` and ``dur`` in integer microseconds;
* a span with a parent gets a flow arrow: a ``ph "s"`` event on the parent's track, at the
  moment the child starts held inside the parent's extent, and a ``ph "f"`` event with
  ``bp "e"`` on the child's track at the child's start, both with the child's span id as
  ``id``, the same ``cat`` and the same ``name`` (Perfetto pairs v1 flow events on all three);
* instants are thread-scoped instant events (``ph "i"``, ``s "t"``) on the service's first
  track.

Times are converted to microseconds by rounding the decimal value of the float half to even,
the same way everywhere, so a span that ends when the next one starts still touches it rather
than overlapping it; a span shorter than 1 µs is drawn 1 µs long. pids and tids are small
integers (from 1) given in sorted order of node, service and track number, and tids are unique
across the whole trace, so the output depends only on what was recorded, and in what order.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from twin.observe.files import write_text_atomic

__all__ = ["Tracer", "to_micros"]

SPAN_CATEGORY = "span"
"""``cat`` of the complete events."""
FLOW_CATEGORY = "flow"
"""``cat`` of the flow events (``s`` and ``f``)."""
INSTANT_CATEGORY = "instant"
"""``cat`` of the instant events."""

_RESERVED_ARGS = frozenset({"trace_id", "span_id", "parent", "service", "node"})


def to_micros(t_s: float) -> int:
    """``t_s`` seconds as whole microseconds, the decimal value rounded half to even.

    ``Decimal(repr(t_s))`` is the shortest decimal that reads back as ``t_s``, so
    ``to_micros(2.5e-6) == 2`` and ``to_micros(3.5e-6) == 4`` whatever the binary error.
    """
    return int(Decimal(repr(float(t_s))).scaleb(6).to_integral_value(rounding=ROUND_HALF_EVEN))


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


def _user_args(args: Mapping[str, Any] | None) -> dict[str, Any]:
    if args is None:
        return {}
    if not isinstance(args, Mapping):
        raise TypeError(f"args must be a mapping, not {type(args).__name__}")
    clash = sorted(str(k) for k in args if str(k) in _RESERVED_ARGS)
    if clash:
        raise ValueError(f"args may not use the reserved keys {clash}")
    return _jsonable(args)


@dataclass(frozen=True)
class _Span:
    span_id: int
    name: str
    service: str
    node: str
    ts: int
    end: int
    trace_id: int
    parent: int | None
    args: dict[str, Any]


@dataclass(frozen=True)
class _Instant:
    name: str
    service: str
    node: str
    ts: int
    args: dict[str, Any]


class Tracer:
    """Collects spans and instants of simulated time; exports them as Chrome Trace Event JSON."""

    def __init__(self) -> None:
        self._spans: dict[int, _Span] = {}
        self._instants: list[_Instant] = []
        self._last_id = 0

    def __len__(self) -> int:
        """The number of spans recorded."""
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
    ) -> int:
        """Record one hop of a request, from ``start_s`` to ``end_s`` (s, simulated); return its id.

        ``parent`` is the id of the span that caused this one (it may be recorded later, by
        reserving its id with :meth:`new_id`); a parent never recorded gets no flow arrow.
        ``span_id`` is an id reserved with :meth:`new_id` and not used yet; without it a new
        id is taken. ``args`` are shown with the span and may not use the keys ``trace_id``,
        ``span_id``, ``parent``, ``service`` or ``node``, which the tracer fills in.
        """
        start_s = _check_time("start_s", start_s)
        end_s = _check_time("end_s", end_s)
        if end_s < start_s:
            raise ValueError(f"span {name!r} ends ({end_s!r} s) before it starts ({start_s!r} s)")
        trace_id = _check_int("trace_id", trace_id)
        if parent is not None:
            parent = _check_int("parent", parent)
        extra = _user_args(args)
        if span_id is None:
            span_id = self.new_id()
        else:
            span_id = _check_int("span_id", span_id)
            if not 1 <= span_id <= self._last_id:
                raise ValueError(f"span_id {span_id} was not reserved with new_id()")
            if span_id in self._spans:
                raise ValueError(f"span_id {span_id} is already used")
        if parent == span_id:
            raise ValueError(f"span {span_id} cannot be its own parent")
        self._spans[span_id] = _Span(
            span_id=span_id,
            name=str(name),
            service=str(service),
            node=str(node),
            ts=to_micros(start_s),
            end=to_micros(end_s),
            trace_id=trace_id,
            parent=parent,
            args=extra,
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
        extra = _user_args(args)
        self._instants.append(_Instant(str(name), str(service), str(node), to_micros(t_s), extra))

    # --- export -------------------------------------------------------------------------

    def _lanes(self) -> dict[int, tuple[str, str, int]]:
        """span id → (node, service, lane): greedy interval colouring per (node, service)."""
        by_service: dict[tuple[str, str], list[_Span]] = {}
        for sp in self._spans.values():
            by_service.setdefault((sp.node, sp.service), []).append(sp)
        lane_of: dict[int, tuple[str, str, int]] = {}
        for (node, service), spans in by_service.items():
            lane_ends: list[int] = []  # last busy microsecond (exclusive) of each lane
            for sp in sorted(spans, key=lambda s: (s.ts, s.end, s.span_id)):
                stop = sp.ts + max(1, sp.end - sp.ts)
                for lane, busy_until in enumerate(lane_ends):
                    if busy_until <= sp.ts:
                        lane_ends[lane] = stop
                        break
                else:
                    lane = len(lane_ends)
                    lane_ends.append(stop)
                lane_of[sp.span_id] = (node, service, lane)
        return lane_of

    def to_chrome(self) -> dict[str, Any]:
        """The trace as a Chrome Trace Event object ``{"traceEvents": [...], "displayTimeUnit": "ms"}``."""
        lane_of = self._lanes()
        tracks = set(lane_of.values()) | {(i.node, i.service, 0) for i in self._instants}
        nodes = sorted({node for node, _, _ in tracks})
        pid_of = {node: k for k, node in enumerate(nodes, start=1)}
        tid_of = {track: k for k, track in enumerate(sorted(tracks), start=1)}

        meta: list[dict[str, Any]] = []
        for node in nodes:
            meta.append(_event("process_name", "M", 0, pid_of[node], 0, args={"name": node}))
        for track in sorted(tracks):
            node, service, lane = track
            label = service if lane == 0 else f"{service} ({lane + 1})"
            meta.append(_event("thread_name", "M", 0, pid_of[node], tid_of[track], args={"name": label}))

        # (sort key, event): by time; at one time a slice before the flow events bound to it.
        timed: list[tuple[tuple[int, ...], dict[str, Any]]] = []
        placed: dict[int, tuple[int, int, int, int]] = {}  # span id -> (pid, tid, ts, dur)
        for sp in self._spans.values():
            track = lane_of[sp.span_id]
            pid, tid = pid_of[track[0]], tid_of[track]
            dur = max(1, sp.end - sp.ts)
            placed[sp.span_id] = (pid, tid, sp.ts, dur)
            args = dict(sp.args)
            args.update(trace_id=sp.trace_id, span_id=sp.span_id, parent=sp.parent)
            args.update(service=sp.service, node=sp.node)
            ev = _event(sp.name, "X", sp.ts, pid, tid, cat=SPAN_CATEGORY, dur=dur, args=args)
            timed.append(((sp.ts, 0, pid, tid, sp.span_id), ev))
        for sp in self._spans.values():
            if sp.parent is None or sp.parent not in placed:
                continue
            p_pid, p_tid, p_ts, p_dur = placed[sp.parent]
            c_pid, c_tid, c_ts, _ = placed[sp.span_id]
            # The start must lie inside the parent's slice for Perfetto to bind it there.
            s_ts = min(max(c_ts, p_ts), p_ts + p_dur - 1)
            flow = f"{self._spans[sp.parent].service} -> {sp.service}"
            ev = _event(flow, "s", s_ts, p_pid, p_tid, cat=FLOW_CATEGORY, id=sp.span_id)
            timed.append(((s_ts, 1, p_pid, p_tid, sp.span_id), ev))
            ev = _event(flow, "f", c_ts, c_pid, c_tid, cat=FLOW_CATEGORY, id=sp.span_id, bp="e")
            timed.append(((c_ts, 2, c_pid, c_tid, sp.span_id), ev))
        for k, ins in enumerate(self._instants):
            track = (ins.node, ins.service, 0)
            pid, tid = pid_of[ins.node], tid_of[track]
            args = dict(ins.args)
            args.update(service=ins.service, node=ins.node)
            ev = _event(ins.name, "i", ins.ts, pid, tid, cat=INSTANT_CATEGORY, s="t", args=args)
            timed.append(((ins.ts, 3, pid, tid, k), ev))

        timed.sort(key=lambda item: item[0])
        return {"traceEvents": meta + [ev for _, ev in timed], "displayTimeUnit": "ms"}

    def to_json(self) -> str:
        """:meth:`to_chrome` as compact JSON with sorted keys, ending in a newline."""
        return json.dumps(self.to_chrome(), sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"

    def write(self, path: Path) -> Path:
        """Write :meth:`to_json` to ``path`` atomically (creating its folder); return ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, self.to_json())
        return path
