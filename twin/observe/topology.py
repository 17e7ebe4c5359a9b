"""A PNG map of a run's topology: nodes, the services on them and the calls between services.

Nodes are rounded boxes laid out deterministically in sorted order (one or two side by side,
three or more on an ellipse, the first at the top and the rest clockwise, so that a call
between two nodes never crosses a third), services are labelled circles inside their node's
box (sorted, on a grid), and each call (caller → callee) is an arrow whose width grows with the
number of messages (log scale) and whose colour goes from green (no errors) through amber to
red (20 % errors or more), labelled "N msgs, E% err, p99 X ms".

Like :mod:`twin.observe.plots` the figure is a :class:`matplotlib.figure.Figure` on a
:class:`~matplotlib.backends.backend_agg.FigureCanvasAgg` (never pyplot), 1000×700 px.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from twin.observe.plots import DPI

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.text import Text

__all__ = ["CallStats", "plot_topology", "error_colour", "arrow_width", "call_label", "RED_AT"]

WIDTH_PX = 1000
HEIGHT_PX = 700
RED_AT = 0.20
"""Error fraction from which a call is drawn fully red."""

_GREEN = (0.10, 0.60, 0.15)
_AMBER = (0.95, 0.65, 0.00)
_RED = (0.85, 0.00, 0.00)
_IDLE = (0.55, 0.55, 0.55)
"""Colour of a call that carried no messages."""

# Drawing area in data units: 1 unit = 100 px, y up. Title above, key below.
_W, _H = WIDTH_PX / 100.0, HEIGHT_PX / 100.0
_AREA = (0.25, 0.55, _W - 0.25, _H - 0.55)  # x0, y0, x1, y1 for the node boxes
_GAP = 0.35  # least space between two node boxes
_HEADER = 0.40  # room for the node's name at the top of its box
_LABEL_ROOM = 0.28  # room for a service's name under its circle
_MAX_RADIUS = 0.32
_MIN_RING_RADIUS = 0.12
_NAME_WIDTH = 0.55  # room beside a circle for its name
_LABEL_AT = (0.5, 0.38, 0.62, 0.28, 0.72, 0.2, 0.8)  # where along an arrow its label may go
_ARC = 0.15  # curvature of a call arrow (arc3 rad): a → b and b → a bend apart


@dataclass(frozen=True)
class CallStats:
    """Traffic of one caller → callee pair: messages sent, how many failed, p99 latency (ms)."""

    messages: int
    errors: int
    p99_ms: float | None

    def __post_init__(self) -> None:
        if self.messages < 0 or self.errors < 0:
            raise ValueError(f"messages and errors must be ≥ 0, got {self.messages}, {self.errors}")

    @property
    def error_fraction(self) -> float:
        """errors / messages, at most 1; 0 without messages (1 if there were errors anyway)."""
        if self.messages == 0:
            return 1.0 if self.errors else 0.0
        return min(1.0, self.errors / self.messages)


def error_colour(fraction: float) -> tuple[float, float, float]:
    """RGB of a call with this error fraction: green at 0, amber at half of :data:`RED_AT`, red from it."""
    x = min(1.0, max(0.0, float(fraction) / RED_AT)) if math.isfinite(fraction) else 1.0
    lo, hi, u = (_GREEN, _AMBER, 2.0 * x) if x <= 0.5 else (_AMBER, _RED, 2.0 * x - 1.0)
    return (lo[0] + (hi[0] - lo[0]) * u, lo[1] + (hi[1] - lo[1]) * u, lo[2] + (hi[2] - lo[2]) * u)


def _call_colour(stats: CallStats) -> tuple[float, float, float]:
    """Grey for a call that carried nothing, else :func:`error_colour` of its error fraction."""
    if stats.messages == 0 and stats.errors == 0:
        return _IDLE
    return error_colour(stats.error_fraction)


def arrow_width(messages: int) -> float:
    """Line width (points) of a call arrow: 1 + 1.5·log10(1 + messages), at most 10."""
    return min(10.0, 1.0 + 1.5 * math.log10(1.0 + max(0, messages)))


def _fmt_ms(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if abs(value) >= 100.0:
        return f"{value:.0f} ms"
    if abs(value) >= 10.0:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def call_label(stats: CallStats) -> str:
    """The text on a call arrow, e.g. ``"1200 msgs, 2.5% err, p99 4.20 ms"``."""
    return f"{stats.messages} msgs, {100.0 * stats.error_fraction:.1f}% err, p99 {_fmt_ms(stats.p99_ms)}"


@dataclass(frozen=True)
class _Box:
    x0: float
    y0: float
    w: float
    h: float

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x0 + self.w / 2.0, self.y0 + self.h / 2.0)


def _node_boxes(n: int) -> list[_Box]:
    """Boxes for ``n`` nodes in the drawing area: a row for one or two, an ellipse for more."""
    x0, y0, x1, y1 = _AREA
    aw, ah = x1 - x0, y1 - y0
    if n <= 2:
        w = (aw - _GAP * (n - 1)) / max(n, 1)
        return [_Box(x0 + k * (w + _GAP), y0, w, ah) for k in range(n)]
    angles = [math.pi / 2.0 - 2.0 * math.pi * k / n for k in range(n)]

    ux = [math.cos(a) for a in angles]
    uy = [math.sin(a) for a in angles]
    ux0, ux1, uy0, uy1 = min(ux), max(ux), min(uy), max(uy)

    def place(h: float, aspect: float) -> list[_Box]:
        # The ellipse stretched so that the boxes reach every side of the area (for three nodes
        # the circle's bottom is empty otherwise).
        w = aspect * h
        sx, sy = (aw - w) / (ux1 - ux0), (ah - h) / (uy1 - uy0)
        return [_Box(x0 + sx * (u - ux0), y0 + sy * (v - uy0), w, h) for u, v in zip(ux, uy, strict=True)]

    def apart(boxes: list[_Box]) -> bool:
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                dx = abs(a.centre[0] - b.centre[0]) - (a.w + b.w) / 2.0
                dy = abs(a.centre[1] - b.centre[1]) - (a.h + b.h) / 2.0
                if max(dx, dy) < _GAP:
                    return False
        return True

    best: tuple[float, list[_Box]] | None = None
    for aspect in (1.3, 1.6, 2.0, 2.5):  # the shape that gives the largest boxes
        lo, hi = 0.3, min(ah * 0.45, aw * 0.45 / aspect)
        for _ in range(40):  # the tallest boxes that keep _GAP apart
            mid = (lo + hi) / 2.0
            lo, hi = (mid, hi) if apart(place(mid, aspect)) else (lo, mid)
        if best is None or aspect * lo * lo > best[0] + 1e-9:
            best = (aspect * lo * lo, place(lo, aspect))
    assert best is not None
    return best[1]


def _grid_spots(box: _Box, k: int) -> tuple[list[tuple[float, float]], float]:
    """Centres for ``k`` service circles on a grid inside ``box`` (row-major), and their radius."""
    iw, ih = box.w - 0.2, box.h - _HEADER - 0.1
    best: tuple[float, int, int] = (-1.0, 1, k)
    for cols in range(1, k + 1):
        rows = math.ceil(k / cols)
        cw, ch = iw / cols, ih / rows
        r = min(_MAX_RADIUS, 0.3 * cw, 0.4 * (ch - _LABEL_ROOM))
        if r > best[0] + 1e-9:
            best = (r, cols, rows)
    r, cols, rows = best
    r = max(r, 0.06)
    cw, ch = iw / cols, ih / rows
    top = box.y0 + box.h - _HEADER
    spots = []
    for i in range(k):
        row, col = divmod(i, cols)
        in_row = min(cols, k - row * cols)  # centre a short last row
        x = box.x0 + 0.1 + (iw - in_row * cw) / 2.0 + (col + 0.5) * cw
        y = top - (row + 0.5) * ch + _LABEL_ROOM / 2.0
        spots.append((x, y))
    return spots, r


def _ring_spots(box: _Box, k: int) -> tuple[list[tuple[float, float]], float] | None:
    """Centres for ``k`` ≥ 3 circles on an ellipse inside ``box`` and their radius, or None if too tight.

    On a ring a call between two services of the node never passes over a third.
    """
    iw, ih = box.w - 0.2, box.h - _HEADER - 0.1
    cx, cy = box.x0 + box.w / 2.0, box.y0 + 0.05 + ih / 2.0 + _LABEL_ROOM / 2.0
    angles = [math.pi / 2.0 + math.pi / k - 2.0 * math.pi * i / k for i in range(k)]

    def place(r: float) -> list[tuple[float, float]] | None:
        ex, ey = iw / 2.0 - r - 0.3, ih / 2.0 - r - _LABEL_ROOM / 2.0 - 0.02
        if ex <= 0.0 or ey <= 0.0:
            return None
        spots = [(cx + ex * math.cos(a), cy + ey * math.sin(a)) for a in angles]
        for i, (x1, y1) in enumerate(spots):
            for x2, y2 in spots[i + 1 :]:
                if abs(x1 - x2) < 2.0 * r + _NAME_WIDTH and abs(y1 - y2) < 2.0 * r + _LABEL_ROOM + 0.05:
                    return None
        return spots

    if place(_MIN_RING_RADIUS) is None:
        return None
    lo, hi = _MIN_RING_RADIUS, _MAX_RADIUS
    if place(hi) is not None:
        lo = hi
    for _ in range(30):
        if hi - lo < 1e-3:
            break
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if place(mid) is not None else (lo, mid)
    spots = place(lo)
    assert spots is not None
    return spots, lo


def _service_spots(box: _Box, k: int) -> tuple[list[tuple[float, float]], float]:
    """Centres and radius of ``k`` service circles in ``box``: a ring for three or more, unless a
    grid allows much larger circles."""
    grid = _grid_spots(box, k)
    if k >= 3:
        ring = _ring_spots(box, k)
        if ring is not None and ring[1] >= 0.8 * grid[1]:
            return ring
    return grid


def _bezier(a: tuple[float, float], b: tuple[float, float], rad: float, t: float) -> tuple[float, float]:
    """Point ``t`` of the quadratic Bézier that matplotlib's ``arc3,rad=rad`` draws from a to b."""
    (x1, y1), (x2, y2) = a, b
    cx, cy = (x1 + x2) / 2.0 + rad * (y2 - y1), (y1 + y2) / 2.0 - rad * (x2 - x1)
    u = 1.0 - t
    return (u * u * x1 + 2 * u * t * cx + t * t * x2, u * u * y1 + 2 * u * t * cy + t * t * y2)


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Area shared by two boxes given as (x0, y0, x1, y1)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _topology_figure(
    nodes: Sequence[str],
    services: Mapping[str, str],
    calls: Mapping[tuple[str, str], CallStats],
    title: str = "",
) -> tuple[Figure, dict[tuple[str, str], FancyArrowPatch]]:
    """Build the figure of :func:`plot_topology`; also return the arrow drawn for each call.

    Exposed for tests, which check the arrows' colours and widths.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

    placed = {str(s): str(n) for s, n in services.items()}
    unknown = sorted({s for pair in calls for s in pair} - set(placed))
    if unknown:
        raise ValueError(f"calls name services that are on no node: {unknown}")
    all_nodes = sorted({str(n) for n in nodes} | set(placed.values()))

    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0.0, _W)
    ax.set_ylim(0.0, _H)
    ax.set_aspect("equal")
    ax.set_axis_off()
    if title:
        ax.text(_W / 2.0, _H - 0.28, title, ha="center", va="center", fontsize=14, fontweight="bold")
    if not all_nodes:
        ax.text(_W / 2.0, _H / 2.0, "no nodes", ha="center", va="center", fontsize=14)
        return fig, {}

    circles: dict[str, Circle] = {}
    names: list[Text] = []
    for node, box in zip(all_nodes, _node_boxes(len(all_nodes)), strict=True):
        ax.add_patch(
            FancyBboxPatch(
                (box.x0 + 0.06, box.y0 + 0.06),
                box.w - 0.12,
                box.h - 0.12,
                boxstyle="round,pad=0.06,rounding_size=0.18",
                facecolor=(0.94, 0.95, 0.97),
                edgecolor=(0.35, 0.38, 0.45),
                linewidth=1.4,
                zorder=1,
            )
        )
        heading = ax.text(
            box.x0 + box.w / 2.0,
            box.y0 + box.h - _HEADER / 2.0 - 0.02,
            node,
            ha="center",
            va="center",
            fontsize=11,
            fontweight="bold",
            color=(0.2, 0.22, 0.3),
            zorder=2,
        )
        names.append(heading)
        members = sorted(s for s, n in placed.items() if n == node)
        if not members:
            ax.text(*box.centre, "(no services)", ha="center", va="center", fontsize=9, color="grey")
            continue
        spots, r = _service_spots(box, len(members))
        for service, (x, y) in zip(members, spots, strict=True):
            circle = Circle(
                (x, y), r, facecolor=(0.80, 0.88, 0.98), edgecolor=(0.15, 0.30, 0.60), linewidth=1.2, zorder=3
            )
            ax.add_patch(circle)
            circles[service] = circle
            names.append(ax.text(x, y - r - 0.05, service, ha="center", va="top", fontsize=8.5, zorder=6))

    arrows: dict[tuple[str, str], FancyArrowPatch] = {}
    paths: dict[tuple[str, str], list[tuple[float, float]]] = {}  # where each label may go
    for caller, callee in sorted(calls):
        stats = calls[(caller, callee)]
        width = arrow_width(stats.messages)
        style = {
            "arrowstyle": f"-|>,head_length={0.5 + 0.08 * width:.3f},head_width={0.3 + 0.05 * width:.3f}",
            "mutation_scale": 14,
            "color": _call_colour(stats),
            "linewidth": width,
            "zorder": 4,
        }
        (x1, y1), ra = circles[caller].center, circles[caller].radius
        if caller == callee:  # a loop over the top of the circle
            a, b = (x1 - 0.7 * ra, y1 + 0.7 * ra), (x1 + 0.7 * ra, y1 + 0.7 * ra)
            arrow = FancyArrowPatch(a, b, connectionstyle="arc3,rad=-1.6", **style)
            # the loop's top is half its control point's height (1.6 × the chord) above the chord
            paths[(caller, callee)] = [(x1, y1 + 0.7 * ra + 0.8 * 1.4 * ra + 0.2)]
        else:
            x2, y2 = circles[callee].center
            arrow = FancyArrowPatch(
                (x1, y1),
                (x2, y2),
                patchA=circles[caller],
                patchB=circles[callee],
                shrinkA=1.0,
                shrinkB=1.0,
                connectionstyle=f"arc3,rad={_ARC}",
                **style,
            )
            paths[(caller, callee)] = [_bezier((x1, y1), (x2, y2), _ARC, t) for t in _LABEL_AT]
        ax.add_patch(arrow)
        arrows[(caller, callee)] = arrow

    # Labels: the busiest calls first, each at the first spot along its arrow that is clear of
    # circles, node and service names and labels already placed (else where it overlaps them least).
    renderer = fig.canvas.get_renderer()
    to_data = ax.transData.inverted()

    def extent(text: Text) -> tuple[float, float, float, float]:
        (u0, v0), (u1, v1) = to_data.transform(text.get_window_extent(renderer).get_points())
        return (u0, v0, u1, v1)

    taken = [extent(t) for t in names]
    taken += [(x - r, y - r, x + r, y + r) for x, y, r in ((*c.center, c.radius) for c in circles.values())]
    for pair in sorted(calls, key=lambda p: (-calls[p].messages, p)):
        stats = calls[pair]
        text = ax.text(
            0.0,
            0.0,
            call_label(stats),
            ha="center",
            va="center",
            fontsize=7.5,
            color=(0.1, 0.1, 0.1),
            zorder=5,
            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": _call_colour(stats)},
        )
        u0, v0, u1, v1 = extent(text)
        hw, hh = (u1 - u0) / 2.0 + 0.04, (v1 - v0) / 2.0 + 0.03
        best: tuple[float, tuple[float, float]] | None = None
        for x, y in paths[pair]:
            box = (x - hw, y - hh, x + hw, y + hh)
            cost = sum(_overlap(box, other) for other in taken)
            if best is None or cost < best[0] - 1e-12:
                best = (cost, (x, y))
            if cost == 0.0:
                break
        assert best is not None
        x, y = best[1]
        text.set_position((x, y))
        taken.append((x - hw, y - hh, x + hw, y + hh))

    key = "arrow: caller → callee;  width: messages (log scale);  colour: errors 0 % green → ≥ 20 % red"
    if not calls:
        key = "no calls recorded;  " + key
    ax.text(_W / 2.0, 0.25, key, ha="center", va="center", fontsize=8.5, color=(0.3, 0.3, 0.3))
    return fig, arrows


def plot_topology(
    nodes: Sequence[str],
    services: Mapping[str, str],
    calls: Mapping[tuple[str, str], CallStats],
    path: Path,
    title: str = "",
) -> Path:
    """Draw nodes, their services and the calls between services as a 1000×700 PNG at ``path``.

    ``services`` maps a service to its node (nodes missing from ``nodes`` are added), ``calls``
    maps (caller service, callee service) to its :class:`CallStats`; a call naming a service
    that is on no node raises :class:`ValueError`. Returns ``path``.
    """
    fig, _ = _topology_figure(nodes, services, calls, title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path
