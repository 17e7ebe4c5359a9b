"""A PNG map of a run's topology: nodes, the replicas placed on them and who talks to whom.

Each node is a rounded box holding one smaller box per service placed on it, with that
service's replicas side by side inside (``planner#0``, ``planner#1`` show as ``#0``, ``#1``
under the name ``planner``). Every :class:`Edge` that carried messages is an arrow from the
sending service to the receiving one: solid for calls, dashed for event-bus deliveries, dotted
and thin for heartbeats; its width grows with the number of messages (log scale) and its colour
goes from green (no errors) through amber to red (20 % errors or more). Two edges between the
same two services bend apart. Each arrow is labelled ``"123 msgs, p50 1.2 ms, p99 3.4 ms"``
(with the number of errors when there were any, and the topic for events) at a spot along it
that keeps clear of the boxes, the names and the other labels; where the arrow offers none the
label goes to the nearest free spot with a thin leader line to the arrow, and failing that
into rows below the legend. A legend explains the line styles and colours.

Services are arbitrary names. A replica's service is its name up to a final ``#<digits>``
(:func:`replica_service`). A service with replicas on several nodes gets a box on each; its
arrows start and end at the box with the most replicas (the first node in order on a tie). A
service named by an edge but placed on no node is drawn in an extra box, "(unplaced)".

Nodes are laid out in the order given: one or two side by side, three or more on an ellipse,
the first at the top and the rest clockwise, so that an arrow between two nodes never crosses a
third. The picture grows with what it shows (1 unit of layout = 1 inch = 100 px). Like
:mod:`twin.observe.plots` the figure is a :class:`matplotlib.figure.Figure` on a
:class:`~matplotlib.backends.backend_agg.FigureCanvasAgg` (never pyplot), and the PNG carries no
software tag, so the same input gives the same bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from twin.observe.files import atomic_file
from twin.observe.plots import DPI

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.text import Text
    from matplotlib.typing import LineStyleType

__all__ = [
    "Edge",
    "RED_AT",
    "arrow_width",
    "edge_label",
    "error_colour",
    "plot_topology",
    "replica_service",
]

RED_AT = 0.20
"""Error fraction from which an edge is drawn fully red."""
UNPLACED = "(unplaced)"
"""Name of the box holding services that edges name but no node holds."""

_GREEN = (0.10, 0.60, 0.15)
_AMBER = (0.95, 0.65, 0.00)
_RED = (0.85, 0.00, 0.00)
_INK = (0.15, 0.17, 0.22)
_LINESTYLE: dict[str, LineStyleType] = {"call": "-", "event": (0, (5, 3)), "heartbeat": (0, (1, 2))}

_REPLICA = re.compile(r"^(.+)#\d+$")
_CHANNEL = re.compile(r"^(call|heartbeat|event:.+)$", re.DOTALL)

# Layout, in inches (= data units).
_PAD = 0.3  # inside a node box, around its services
_NODE_HEADER = 0.42  # room for the node's name at the top of its box
_GROUP_HEADER = 0.28  # room for a service's name at the top of its box
_REPLICA_H = 0.26
_REPLICA_GAP = 0.06
_GROUP_GAP = (1.5, 0.9)  # between service boxes in a node: across, down
_NODE_GAP = 1.4  # least space between two node boxes
_MARGIN = 0.3
_TITLE_ROOM = 0.6
_LEGEND_ROOM = 0.7
_MIN_SIZE = (8.0, 5.0)
_LABEL_FONT = 7.5
_LABEL_PAD = 0.2  # of the label's box, in font sizes
_CLEAR = 0.04  # least space around a label
_ALONG = (0.5, 0.42, 0.58, 0.34, 0.66, 0.26, 0.74, 0.18, 0.82)  # where along an arrow a label may go
_ACROSS = (0.0, 0.22, -0.22, 0.45, -0.45)  # and how far beside it


def replica_service(replica: str) -> str:
    """The service of a replica: ``"planner#1"`` → ``"planner"``; a name without ``#<n>`` is its own."""
    m = _REPLICA.match(replica)
    return m.group(1) if m else replica


@dataclass(frozen=True)
class Edge:
    """Traffic from service ``src`` to service ``dst`` over one channel.

    ``channel`` is ``"call"`` (requests, answered), ``"event:<topic>"`` (event-bus deliveries)
    or ``"heartbeat"``; ``messages`` how many were sent, ``errors`` how many of them failed
    (timed out, refused, lost, ...), ``p50_ms`` and ``p99_ms`` their latency percentiles (None
    when unknown). Services are named as in :func:`replica_service`, without ``#<n>``.
    """

    src: str
    dst: str
    channel: str
    messages: int
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.channel, str) or not _CHANNEL.match(self.channel):
            raise ValueError(f"channel must be 'call', 'heartbeat' or 'event:<topic>', got {self.channel!r}")
        if self.messages < 0 or self.errors < 0:
            raise ValueError(f"messages and errors must be ≥ 0, got {self.messages}, {self.errors}")

    @property
    def kind(self) -> str:
        """``"call"``, ``"event"`` or ``"heartbeat"``."""
        return self.channel.split(":", 1)[0]

    @property
    def error_fraction(self) -> float:
        """errors / messages, at most 1; 0 without messages (1 if there were errors anyway)."""
        if self.messages == 0:
            return 1.0 if self.errors else 0.0
        return min(1.0, self.errors / self.messages)


def error_colour(fraction: float) -> tuple[float, float, float]:
    """RGB for this error fraction: green at 0, amber at half of :data:`RED_AT`, red from it."""
    x = min(1.0, max(0.0, float(fraction) / RED_AT)) if math.isfinite(fraction) else 1.0
    lo, hi, u = (_GREEN, _AMBER, 2.0 * x) if x <= 0.5 else (_AMBER, _RED, 2.0 * x - 1.0)
    return (lo[0] + (hi[0] - lo[0]) * u, lo[1] + (hi[1] - lo[1]) * u, lo[2] + (hi[2] - lo[2]) * u)


def arrow_width(messages: int) -> float:
    """Line width (points) of an arrow: 1 + 1.2·log10(1 + messages), at most 8."""
    return min(8.0, 1.0 + 1.2 * math.log10(1.0 + max(0, messages)))


def _fmt_ms(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 1000.0 else f"{value:.3g}"


def edge_label(edge: Edge) -> str:
    """The text on an arrow, e.g. ``"123 msgs, p50 1.2 ms, p99 3.4 ms"``.

    Errors are added when there were any (``"123 msgs, 4 err, ..."``), a percentile that is
    unknown or not finite is left out, and an event's topic comes first (``"joint_states: ..."``).
    """
    parts = [f"{edge.messages} msgs"]
    if edge.errors:
        parts.append(f"{edge.errors} err")
    for name, value in (("p50", edge.p50_ms), ("p99", edge.p99_ms)):
        if value is not None and math.isfinite(value):
            parts.append(f"{name} {_fmt_ms(value)} ms")
    text = ", ".join(parts)
    return f"{edge.channel.split(':', 1)[1]}: {text}" if edge.kind == "event" else text


# --- layout ------------------------------------------------------------------------------

Rect = tuple[float, float, float, float]  # x0, y0, x1, y1


class _ArrowStyle(TypedDict):
    """The keyword arguments of :class:`~matplotlib.patches.FancyArrowPatch` shared by all arrows."""

    arrowstyle: str
    mutation_scale: float
    color: tuple[float, float, float]
    linewidth: float
    linestyle: LineStyleType
    zorder: float


@dataclass
class _Group:
    """A service's box in one node: its size, then its place once the node is placed."""

    service: str
    replicas: list[str]
    w: float
    h: float
    x0: float = 0.0  # relative to the node's box until the node is placed
    y0: float = 0.0

    @property
    def rect(self) -> Rect:
        return (self.x0, self.y0, self.x0 + self.w, self.y0 + self.h)


@dataclass
class _Node:
    name: str
    groups: list[_Group]
    w: float
    h: float
    x0: float = 0.0
    y0: float = 0.0
    cells: tuple[int, int] = (1, 1)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rect(self) -> Rect:
        return (self.x0, self.y0, self.x0 + self.w, self.y0 + self.h)


def _replica_tag(service: str, replica: str) -> str:
    return replica[len(service) :] if replica != service and replica.startswith(service + "#") else replica


class _Measure:
    """Text sizes in inches, from the Agg renderer that will draw them."""

    def __init__(self, fig: Figure) -> None:
        from matplotlib.font_manager import FontProperties

        self._renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        self._props = FontProperties
        self._dpi = fig.dpi

    def __call__(self, text: str, size: float, bold: bool = False) -> tuple[float, float]:
        prop = self._props(size=size, weight="bold" if bold else "normal")
        w, h, _ = self._renderer.get_text_width_height_descent(text, prop, ismath=False)
        return w / self._dpi, h / self._dpi


def _layout_node(name: str, members: list[tuple[str, list[str]]], measure: _Measure) -> _Node:
    groups = []
    for service, replicas in members:
        name_w, _ = measure(service, 8.5, bold=True)
        tags = [measure(_replica_tag(service, r), 7.5)[0] + 0.14 for r in replicas]
        inner = sum(tags) + _REPLICA_GAP * max(0, len(tags) - 1)
        w = max(name_w, inner) + 0.2
        h = _GROUP_HEADER + (_REPLICA_H + 0.08 if replicas else 0.0) + 0.06
        groups.append(_Group(service, replicas, w, h))
    title_w, _ = measure(name, 10.5, bold=True)
    if not groups:
        return _Node(name, groups, max(1.6, title_w + 2 * _PAD), _NODE_HEADER + 0.6)
    k = len(groups)
    cw, ch = max(g.w for g in groups), max(g.h for g in groups)
    best: tuple[float, int] | None = None
    for cols in range(1, k + 1):  # the grid closest to a 1.6:1 box
        rows = math.ceil(k / cols)
        w, h = cols * cw + (cols - 1) * _GROUP_GAP[0], rows * ch + (rows - 1) * _GROUP_GAP[1]
        score = abs(math.log((w / h) / 1.6))
        if best is None or score < best[0] - 1e-9:
            best = (score, cols)
    assert best is not None
    cols = best[1]
    rows = math.ceil(k / cols)
    inner_w = cols * cw + (cols - 1) * _GROUP_GAP[0]
    inner_h = rows * ch + (rows - 1) * _GROUP_GAP[1]
    node_w = max(inner_w, title_w) + 2 * _PAD
    node_h = inner_h + _NODE_HEADER + _PAD
    for i, g in enumerate(groups):
        row, col = divmod(i, cols)
        in_row = min(cols, k - row * cols)  # centre a short last row
        left = (node_w - (in_row * cw + (in_row - 1) * _GROUP_GAP[0])) / 2.0
        g.x0 = left + col * (cw + _GROUP_GAP[0]) + (cw - g.w) / 2.0
        g.y0 = node_h - _NODE_HEADER - row * (ch + _GROUP_GAP[1]) - (ch + g.h) / 2.0
    return _Node(name, groups, node_w, node_h, cells=(cols, rows))


def _apart(nodes: Sequence[_Node], cx: Sequence[float], cy: Sequence[float]) -> bool:
    for i in range(len(nodes)):
        for j in range(i + 1, len(nodes)):
            dx = abs(cx[i] - cx[j]) - (nodes[i].w + nodes[j].w) / 2.0
            dy = abs(cy[i] - cy[j]) - (nodes[i].h + nodes[j].h) / 2.0
            if max(dx, dy) < _NODE_GAP:
                return False
    return True


def _place_nodes(nodes: list[_Node]) -> None:
    """Centres for the node boxes: a row for one or two, else an ellipse as small as keeps them apart."""
    n = len(nodes)
    if n <= 2:
        x = 0.0
        for node in nodes:
            node.x0, node.y0 = x, -node.h / 2.0
            x += node.w + _NODE_GAP
        return
    angles = [math.pi / 2.0 - 2.0 * math.pi * k / n for k in range(n)]
    ax = 1.6 * max(nd.w for nd in nodes)
    ay = 1.0 * max(nd.h for nd in nodes) + 0.3
    lo, hi = 0.05, 1.0
    while not _apart(nodes, [hi * ax * math.cos(a) for a in angles], [hi * ay * math.sin(a) for a in angles]):
        hi *= 2.0
    for _ in range(40):
        mid = (lo + hi) / 2.0
        ok = _apart(nodes, [mid * ax * math.cos(a) for a in angles], [mid * ay * math.sin(a) for a in angles])
        lo, hi = (lo, mid) if ok else (mid, hi)
    for node, a in zip(nodes, angles, strict=True):
        node.x0 = hi * ax * math.cos(a) - node.w / 2.0
        node.y0 = hi * ay * math.sin(a) - node.h / 2.0


def _overlap(a: Rect, b: Rect) -> float:
    """Area shared by two rectangles."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _grow(r: Rect, d: float) -> Rect:
    return (r[0] - d, r[1] - d, r[2] + d, r[3] + d)


def _bezier(
    a: tuple[float, float], b: tuple[float, float], rad: float, t: float
) -> tuple[float, float, float, float]:
    """Point ``t`` of matplotlib's ``arc3,rad=rad`` curve from a to b, and the unit normal there."""
    (x1, y1), (x2, y2) = a, b
    cx, cy = (x1 + x2) / 2.0 + rad * (y2 - y1), (y1 + y2) / 2.0 - rad * (x2 - x1)
    u = 1.0 - t
    x = u * u * x1 + 2 * u * t * cx + t * t * x2
    y = u * u * y1 + 2 * u * t * cy + t * t * y2
    dx = 2 * u * (cx - x1) + 2 * t * (x2 - cx)
    dy = 2 * u * (cy - y1) + 2 * t * (y2 - cy)
    norm = math.hypot(dx, dy) or 1.0
    return x, y, -dy / norm, dx / norm


@dataclass
class _Drawn:
    """The figure and what was drawn on it, for tests."""

    fig: Figure
    arrows: dict[Edge, FancyArrowPatch]
    labels: dict[Edge, Text]
    groups: dict[tuple[str, str], FancyBboxPatch]  # (node, service) -> box
    nodes: dict[str, FancyBboxPatch]
    legend: Any


def _collect_nodes(nodes: Mapping[str, Sequence[str]], edges: Sequence[Edge]) -> list[tuple[str, list]]:
    out: list[tuple[str, list[tuple[str, list[str]]]]] = []
    placed: set[str] = set()
    for node, replicas in nodes.items():
        members: dict[str, list[str]] = {}
        for replica in replicas:
            members.setdefault(replica_service(str(replica)), []).append(str(replica))
        placed.update(members)
        out.append((str(node), list(members.items())))
    loose = sorted({s for e in edges if e.messages > 0 for s in (e.src, e.dst)} - placed)
    if loose:
        out.append((UNPLACED, [(s, []) for s in loose]))
    return out


def _topology_figure(nodes: Mapping[str, Sequence[str]], edges: Sequence[Edge], title: str = "") -> _Drawn:
    """Build the figure of :func:`plot_topology` and return it with the artists drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    for e in edges:
        if not isinstance(e, Edge):
            raise TypeError(f"edges must be Edge, not {type(e).__name__}")
    fig = Figure(figsize=_MIN_SIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    measure = _Measure(fig)
    layout = [_layout_node(name, members, measure) for name, members in _collect_nodes(nodes, edges)]
    _place_nodes(layout)

    # The canvas: the nodes, with room for the title above and the legend below.
    if layout:
        x0 = min(nd.x0 for nd in layout) - _MARGIN - 0.6
        x1 = max(nd.x0 + nd.w for nd in layout) + _MARGIN + 0.6
        y0 = min(nd.y0 for nd in layout) - _MARGIN - 0.5
        y1 = max(nd.y0 + nd.h for nd in layout) + _MARGIN + 0.3
    else:
        x0, y0, x1, y1 = 0.0, 0.0, 1.0, 1.0
    x1, y1 = max(x1, x0 + _MIN_SIZE[0]), max(y1, y0 + _MIN_SIZE[1] - _TITLE_ROOM - _LEGEND_ROOM)
    y0 -= _LEGEND_ROOM
    y1 += _TITLE_ROOM
    shift_x, shift_y = -x0, -y0  # make the canvas start at (0, 0)
    width, height = x1 - x0, y1 - y0
    for nd in layout:
        nd.x0 += shift_x
        nd.y0 += shift_y
        for g in nd.groups:
            g.x0 += nd.x0
            g.y0 += nd.y0

    fig.set_size_inches(width, height)
    ax: Axes = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0.0, width)
    ax.set_ylim(0.0, height)
    ax.set_axis_off()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    to_data = ax.transData.inverted()

    def extent(artist: Any) -> Rect:
        (u0, v0), (u1, v1) = to_data.transform(artist.get_window_extent(renderer).get_points())
        return (u0, v0, u1, v1)

    hard: list[Rect] = []  # what a label may not touch
    if title:
        hard.append(
            extent(
                ax.text(
                    width / 2.0,
                    height - 0.3,
                    title,
                    ha="center",
                    va="center",
                    fontsize=13,
                    fontweight="bold",
                    color=_INK,
                )
            )
        )
    if not layout:
        ax.text(width / 2.0, height / 2.0, "no nodes", ha="center", va="center", fontsize=14)

    node_patches: dict[str, FancyBboxPatch] = {}
    group_patches: dict[tuple[str, str], FancyBboxPatch] = {}
    anchor: dict[str, tuple[int, _Group]] = {}  # service -> (replicas, its box with the most)
    for nd in layout:
        patch = FancyBboxPatch(
            (nd.x0, nd.y0),
            nd.w,
            nd.h,
            boxstyle="round,pad=0,rounding_size=0.15",
            facecolor=(0.94, 0.95, 0.97),
            edgecolor=(0.35, 0.38, 0.45),
            linewidth=1.4,
            linestyle="--" if nd.name == UNPLACED else "-",
            zorder=1,
        )
        ax.add_patch(patch)
        node_patches[nd.name] = patch
        hard.append(
            extent(
                ax.text(
                    nd.x0 + nd.w / 2.0,
                    nd.y0 + nd.h - _NODE_HEADER / 2.0,
                    nd.name,
                    ha="center",
                    va="center",
                    fontsize=10.5,
                    fontweight="bold",
                    color=_INK,
                    zorder=2,
                )
            )
        )
        if not nd.groups:
            ax.text(
                nd.x0 + nd.w / 2.0,
                nd.y0 + (nd.h - _NODE_HEADER) / 2.0,
                "(no services)",
                ha="center",
                va="center",
                fontsize=8,
                color="grey",
                zorder=2,
            )
        for g in nd.groups:
            box = FancyBboxPatch(
                (g.x0, g.y0),
                g.w,
                g.h,
                boxstyle="round,pad=0,rounding_size=0.08",
                facecolor=(0.80, 0.88, 0.98),
                edgecolor=(0.15, 0.30, 0.60),
                linewidth=1.2,
                zorder=3,
            )
            ax.add_patch(box)
            group_patches[(nd.name, g.service)] = box
            hard.append(g.rect)
            ax.text(
                g.x0 + g.w / 2.0,
                g.y0 + g.h - _GROUP_HEADER / 2.0 - 0.02,
                g.service,
                ha="center",
                va="center",
                fontsize=8.5,
                fontweight="bold",
                color=_INK,
                zorder=4,
            )
            tags = [_replica_tag(g.service, r) for r in g.replicas]
            widths = [measure(t, 7.5)[0] + 0.14 for t in tags]
            x = g.x0 + (g.w - sum(widths) - _REPLICA_GAP * max(0, len(tags) - 1)) / 2.0
            for tag, w in zip(tags, widths, strict=True):
                ax.add_patch(
                    FancyBboxPatch(
                        (x, g.y0 + 0.07),
                        w,
                        _REPLICA_H,
                        boxstyle="round,pad=0,rounding_size=0.04",
                        facecolor="white",
                        edgecolor=(0.15, 0.30, 0.60),
                        linewidth=0.8,
                        zorder=4,
                    )
                )
                ax.text(
                    x + w / 2.0,
                    g.y0 + 0.07 + _REPLICA_H / 2.0,
                    tag,
                    ha="center",
                    va="center",
                    fontsize=7.5,
                    color=_INK,
                    zorder=5,
                )
                x += w + _REPLICA_GAP
            if g.service not in anchor or len(g.replicas) > anchor[g.service][0]:
                anchor[g.service] = (len(g.replicas), g)
    group_of = {s: g for s, (_, g) in anchor.items()}
    patch_of = {
        g.service: group_patches[(nd.name, g.service)]
        for nd in layout
        for g in nd.groups
        if group_of.get(g.service) is g
    }

    # Legend below the nodes.
    handles = [
        Line2D([], [], color=_INK, linewidth=2.0, linestyle=_LINESTYLE["call"], label="call"),
        Line2D([], [], color=_INK, linewidth=2.0, linestyle=_LINESTYLE["event"], label="event (topic: ...)"),
        Line2D([], [], color=_INK, linewidth=1.0, linestyle=_LINESTYLE["heartbeat"], label="heartbeat"),
        Line2D([], [], color=_GREEN, linewidth=3.0, label="no errors"),
        Line2D([], [], color=_AMBER, linewidth=3.0, label=f"{50 * RED_AT:.0f} % errors"),
        Line2D([], [], color=_RED, linewidth=3.0, label=f"≥ {100 * RED_AT:.0f} % errors"),
    ]
    legend = ax.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(width / 2.0, 0.08),
        bbox_transform=ax.transData,
        ncol=len(handles),
        fontsize=8,
        frameon=True,
        title="width: messages (log scale)",
        title_fontsize=8,
    )
    legend.set_zorder(6)
    hard.append(extent(legend))

    # Arrows: edges of one ordered pair bend further out one after the other; a -> b and b -> a
    # bend to opposite sides since the curvature is relative to the direction.
    drawn = sorted(
        (e for e in edges if e.messages > 0),
        key=lambda e: (e.src, e.dst, e.channel, e.messages, e.errors, str(e.p50_ms), str(e.p99_ms)),
    )
    arrows: dict[Edge, FancyArrowPatch] = {}
    curves: dict[Edge, tuple[tuple[float, float], tuple[float, float], float]] = {}
    seen: dict[tuple[str, str], int] = {}
    for e in drawn:
        k = seen.get((e.src, e.dst), 0)
        seen[(e.src, e.dst)] = k + 1
        colour = error_colour(e.error_fraction)
        width_pt = 1.0 if e.kind == "heartbeat" else arrow_width(e.messages)
        style: _ArrowStyle = {
            "arrowstyle": (
                f"-|>,head_length={0.45 + 0.06 * width_pt:.3f},head_width={0.25 + 0.04 * width_pt:.3f}"
            ),
            "mutation_scale": 14,
            "color": colour,
            "linewidth": width_pt,
            "linestyle": _LINESTYLE[e.kind],
            "zorder": 2,
        }
        ga, gb = group_of[e.src], group_of[e.dst]
        a = ((ga.rect[0] + ga.rect[2]) / 2.0, (ga.rect[1] + ga.rect[3]) / 2.0)
        if e.src == e.dst:  # a loop over the top of the box
            half = min(ga.w / 2.0 - 0.05, 0.25 + 0.1 * k)
            p, q = (a[0] - half, ga.rect[3]), (a[0] + half, ga.rect[3])
            rad = -1.2 - 0.8 * (1.0 - 0.8**k)
            arrow = FancyArrowPatch(p, q, connectionstyle=f"arc3,rad={rad}", shrinkA=0, shrinkB=0, **style)
            curves[e] = (p, q, rad)
        else:
            b = ((gb.rect[0] + gb.rect[2]) / 2.0, (gb.rect[1] + gb.rect[3]) / 2.0)
            rad = 0.12 + 0.8 * (1.0 - 0.8**k)  # further out for each, but never wildly
            arrow = FancyArrowPatch(
                a,
                b,
                patchA=patch_of[e.src],
                patchB=patch_of[e.dst],
                shrinkA=1.0,
                shrinkB=1.0,
                connectionstyle=f"arc3,rad={rad}",
                **style,
            )
            curves[e] = (a, b, rad)
        ax.add_patch(arrow)
        arrows[e] = arrow

    labels = _place_labels(fig, ax, drawn, curves, hard, [nd.rect for nd in layout], extent)
    return _Drawn(fig, arrows, labels, group_patches, node_patches, legend)


def _place_labels(
    fig: Figure,
    ax: Axes,
    edges: list[Edge],
    curves: Mapping[Edge, tuple[tuple[float, float], tuple[float, float], float]],
    hard: list[Rect],
    node_rects: list[Rect],
    extent: Any,
) -> dict[Edge, Text]:
    """Label every arrow, the busiest first, where its label touches nothing (see the module doc).

    ``fig`` is the figure holding ``ax``; it grows when labels overflow below the legend.
    """
    width, height = ax.get_xlim()[1], ax.get_ylim()[1]
    taken = list(hard)

    def cost(r: Rect) -> float:
        if r[0] < 0.0 or r[1] < 0.0 or r[2] > width or r[3] > height:
            return math.inf
        area = (r[2] - r[0]) * (r[3] - r[1])
        c = sum(_overlap(r, o) for o in taken)
        for n in node_rects:  # inside a node or outside it, never across its border
            shared = _overlap(r, n)
            c += min(shared, area - shared)
        return c

    labels: dict[Edge, Text] = {}
    leaders: list[tuple[Edge, tuple[float, float]]] = []
    overflow: list[Edge] = []
    sizes: dict[Edge, tuple[float, float]] = {}
    for e in sorted(edges, key=lambda e: (-e.messages, e.src, e.dst, e.channel)):
        text = ax.text(
            0.0,
            0.0,
            edge_label(e),
            ha="center",
            va="center",
            fontsize=_LABEL_FONT,
            color=_INK,
            zorder=7,
            bbox={
                "boxstyle": f"round,pad={_LABEL_PAD}",
                "facecolor": "white",
                "edgecolor": error_colour(e.error_fraction),
                "linewidth": 0.8,
            },
        )
        labels[e] = text
        u0, v0, u1, v1 = extent(text)
        pad = _LABEL_PAD * _LABEL_FONT / 72.0 + _CLEAR
        hw, hh = (u1 - u0) / 2.0 + pad, (v1 - v0) / 2.0 + pad
        sizes[e] = (hw, hh)
        a, b, rad = curves[e]
        spot: tuple[float, float] | None = None
        for t in _ALONG:
            x, y, nx, ny = _bezier(a, b, rad, t)
            for off in _ACROSS:
                cx, cy = x + off * nx, y + off * ny
                if cost((cx - hw, cy - hh, cx + hw, cy + hh)) == 0.0:
                    spot = (cx, cy)
                    break
            if spot is not None:
                break
        mid = _bezier(a, b, rad, 0.5)[:2]
        if spot is None:  # the nearest free spot, with a leader line
            step = 0.1
            grid = [
                (i * step, j * step)
                for i in range(int(width / step) + 1)
                for j in range(int(height / step) + 1)
            ]
            grid.sort(key=lambda p: ((p[0] - mid[0]) ** 2 + (p[1] - mid[1]) ** 2, p))
            for cx, cy in grid:
                if cost((cx - hw, cy - hh, cx + hw, cy + hh)) == 0.0:
                    spot = (cx, cy)
                    leaders.append((e, mid))
                    break
        if spot is None:
            overflow.append(e)
            continue
        text.set_position(spot)
        taken.append((spot[0] - hw, spot[1] - hh, spot[0] + hw, spot[1] + hh))

    if overflow:  # rows below everything else; the canvas grows downwards to hold them
        row_h = max(2.0 * sizes[e][1] for e in overflow)
        rows: list[list[Edge]] = [[]]
        used = 0.0
        for e in overflow:
            w = 2.0 * sizes[e][0]
            if rows[-1] and used + w > width - 2 * _MARGIN:
                rows.append([])
                used = 0.0
            rows[-1].append(e)
            used += w
        grow = len(rows) * row_h + _MARGIN
        for artist in [*ax.patches, *ax.texts, *ax.lines]:
            _shift(artist, grow)
        legend = ax.get_legend()
        if legend is not None:
            legend.set_bbox_to_anchor((width / 2.0, 0.08 + grow), transform=ax.transData)
        leaders = [(e, (m[0], m[1] + grow)) for e, m in leaders]
        height += grow
        fig.set_size_inches(width, height)
        ax.set_ylim(0.0, height)
        for r, row in enumerate(rows):
            x = _MARGIN
            y = grow - _MARGIN / 2.0 - (r + 0.5) * row_h
            for e in row:
                hw, _ = sizes[e]
                labels[e].set_position((x + hw, y))
                a, b, rad = curves[e]
                m = _bezier(a, b, rad, 0.5)
                leaders.append((e, (m[0], m[1])))
                x += 2.0 * hw
    for e, (mx, my) in leaders:
        lx, ly = labels[e].get_position()
        ax.plot([lx, mx], [ly, my], color=(0.5, 0.5, 0.5), linewidth=0.6, linestyle="-", zorder=6)
    return labels


def _shift(artist: Any, dy: float) -> None:
    """Move an artist drawn in data coordinates up by ``dy``."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.text import Text

    if isinstance(artist, Text):
        x, y = artist.get_position()
        artist.set_position((x, y + dy))
    elif isinstance(artist, FancyBboxPatch):
        artist.set_y(artist.get_y() + dy)
    elif isinstance(artist, FancyArrowPatch):
        (x1, y1), (x2, y2) = artist._posA_posB  # type: ignore[attr-defined]
        artist.set_positions((x1, y1 + dy), (x2, y2 + dy))
    else:
        xs, ys = artist.get_data()
        artist.set_data(xs, [y + dy for y in ys])


def plot_topology(
    nodes: Mapping[str, Sequence[str]],
    edges: Sequence[Edge],
    path: Path,
    title: str = "",
) -> Path:
    """Draw the nodes, the replicas on them and the traffic between services as a PNG at ``path``.

    ``nodes`` maps a node's name to the replicas placed on it (``{"edge": ["planner#0",
    "planner#1", "driver#0"]}``), in the order to draw them; ``edges`` is the traffic between
    services, one :class:`Edge` per (sender, receiver, channel); edges without messages are not
    drawn. Returns ``path`` (its folder is created).
    """
    drawn = _topology_figure(nodes, edges, title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        drawn.fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    return path
