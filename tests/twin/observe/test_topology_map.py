"""Tests of twin.observe.topology: nodes, replicas and who talks to whom, as a PNG."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from twin.observe.topology import (
    RED_AT,
    UNPLACED,
    Edge,
    _topology_figure,
    arrow_width,
    edge_label,
    error_colour,
    plot_topology,
    replica_service,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GREEN = error_colour(0.0)
RED = error_colour(1.0)

NODES = {
    "ctrl": ["operator#0", "gateway#0", "registry#0"],
    "edge": ["planner#0", "planner#1", "driver#0", "camera#0"],
    "cloud": ["telemetry#0", "my|analytics#0", "my|analytics#1"],
}
EDGES = [
    Edge("operator", "gateway", "call", 1200, 3, 1.2, 3.4),
    Edge("gateway", "planner", "call", 1197, 40, 0.8, 2.9),
    Edge("planner", "driver", "call", 30000, 0, 0.31, 0.52),
    Edge("driver", "planner", "event:joint_states", 29000, 12, 0.4, 1.1),  # the opposite way
    Edge("driver", "telemetry", "event:joint_states", 29000, 0, 2.1, 5.0),
    Edge("camera", "planner", "event:frames", 900, 0, 3.3, 8.8),
    Edge("camera", "my|analytics", "event:frames", 900, 300, 12.0, 40.0),
    Edge("planner", "registry", "heartbeat", 60, 0, 0.5, 0.9),
    Edge("driver", "registry", "heartbeat", 60, 1, 0.5, 0.9),
    Edge("camera", "registry", "heartbeat", 60, 0, 0.5, 0.9),
    Edge("telemetry", "operator", "event:alarms", 4, 0, 5.0, 6.0),
    Edge("gateway", "operator", "event:estop", 1, 0, None, None),
]
IDLE = Edge("operator", "telemetry", "call", 0, 0, None, None)


Box = tuple[float, float, float, float]


def _box(bbox: object) -> Box:
    x0, y0, x1, y1 = bbox.extents  # type: ignore[attr-defined]
    return (x0, y0, x1, y1)


def _overlaps(a: Box, b: Box) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _inside(a: Box, b: Box) -> bool:
    return a[0] >= b[0] and a[1] >= b[1] and a[2] <= b[2] and a[3] <= b[3]


def _assert_labels_clear(nodes: dict[str, list[str]], edges: list[Edge]) -> None:
    """Rendered by Agg: no two labels overlap, and none touches a box, a name or the legend."""
    drawn = _topology_figure(nodes, edges, "a title")
    fig = drawn.fig
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    assert set(drawn.labels) == {e for e in edges if e.messages > 0}
    label_boxes = {}
    for edge, text in drawn.labels.items():
        patch = text.get_bbox_patch()
        assert patch is not None
        outer = _box(patch.get_window_extent(renderer))
        assert _inside(_box(text.get_window_extent(renderer)), outer)
        label_boxes[edge] = outer
    for (ea, a), (eb, b) in itertools.combinations(label_boxes.items(), 2):
        assert not _overlaps(a, b), (ea, eb)
    width, height = fig.canvas.get_width_height()
    label_texts = {t for t in drawn.labels.values()}
    names = [_box(t.get_window_extent(renderer)) for t in fig.axes[0].texts if t not in label_texts]
    groups = [_box(p.get_window_extent(renderer)) for p in drawn.groups.values()]
    node_boxes = [_box(p.get_window_extent(renderer)) for p in drawn.nodes.values()]
    legend = _box(drawn.legend.get_window_extent(renderer))
    for edge, lab in label_boxes.items():
        assert lab[0] >= 0 and lab[1] >= 0 and lab[2] <= width and lab[3] <= height, edge
        assert not _overlaps(lab, legend), edge
        for other in names + groups:
            assert not _overlaps(lab, other), (edge, other)
        for node in node_boxes:  # in a node or outside it, never across its border
            assert _inside(lab, node) or not _overlaps(lab, node), (edge, node)


# --- Edge and labels -------------------------------------------------------------------


def test_edge_checks_its_channel_and_counts() -> None:
    assert Edge("a", "b", "call", 1).kind == "call"
    assert Edge("a", "b", "event:joint states", 1).kind == "event"
    assert Edge("a", "b", "heartbeat", 1).kind == "heartbeat"
    for channel in ("rpc", "event:", "event", "Call", ""):
        with pytest.raises(ValueError, match="channel"):
            Edge("a", "b", channel, 1)
    with pytest.raises(ValueError):
        Edge("a", "b", "call", -1)
    with pytest.raises(ValueError):
        Edge("a", "b", "call", 1, -1)
    assert Edge("a", "b", "call", 10, 1).error_fraction == pytest.approx(0.1)
    assert Edge("a", "b", "call", 0, 2).error_fraction == 1.0
    assert Edge("a", "b", "call", 3, 30).error_fraction == 1.0


def test_replica_service() -> None:
    assert replica_service("planner#1") == "planner"
    assert replica_service("my#svc#12") == "my#svc"
    assert replica_service("solo") == "solo"
    assert replica_service("odd#x") == "odd#x"


def test_edge_label() -> None:
    assert edge_label(Edge("a", "b", "call", 123, 0, 1.2, 3.4)) == "123 msgs, p50 1.2 ms, p99 3.4 ms"
    assert (
        edge_label(Edge("a", "b", "call", 5, 2, 0.0523, 1234.5))
        == "5 msgs, 2 err, p50 0.0523 ms, p99 1234 ms"
    )
    assert edge_label(Edge("a", "b", "event:frames", 9, 0, None, 12.34)) == "frames: 9 msgs, p99 12.3 ms"
    assert edge_label(Edge("a", "b", "heartbeat", 1, 0, float("nan"), None)) == "1 msgs"


def test_colour_and_width_scales() -> None:
    assert GREEN[1] > 0.5 and RED[0] > 0.8 and RED[1] == 0.0
    for frac in (RED_AT, 0.5, 1.0):
        assert error_colour(frac) == pytest.approx(RED)
    widths = [arrow_width(m) for m in (0, 1, 10, 1000, 10**9)]
    assert widths == sorted(widths) and widths[0] == 1.0


# --- the picture -----------------------------------------------------------------------


def test_writes_a_deterministic_png(tmp_path: Path) -> None:
    a = plot_topology(NODES, EDGES, tmp_path / "sub" / "topology.png", "run 1")
    b = plot_topology(NODES, list(reversed(EDGES)), tmp_path / "b.png", "run 1")
    assert a == tmp_path / "sub" / "topology.png"
    data = a.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data == b.read_bytes()  # the order of the edges does not matter either
    assert b"matplotlib" not in data
    with Image.open(a) as im:
        im.load()
        assert "Software" not in im.info
        assert im.size[0] >= 800 and im.size[1] >= 500


def test_labels_do_not_overlap_each_other_or_the_boxes() -> None:
    _assert_labels_clear(NODES, [*EDGES, IDLE])


def test_crowded_labels_still_do_not_overlap() -> None:
    # Twenty edges between two services of one node: most labels need leader lines or rows
    # of their own below the legend.
    nodes = {"solo": ["a#0", "b#0"]}
    edges = [Edge("a", "b", f"event:topic{k}", 100 + k, k % 3, 1.0 + k, 2.0 + k) for k in range(10)]
    edges += [Edge("b", "a", f"event:back{k}", 50 + k, 0, 0.5, 0.9) for k in range(10)]
    _assert_labels_clear(nodes, edges)


def test_every_edge_with_messages_is_an_arrow_styled_by_its_channel() -> None:
    drawn = _topology_figure(NODES, [*EDGES, IDLE])
    assert set(drawn.arrows) == set(EDGES)  # the idle edge is not drawn
    texts = {t.get_text() for t in drawn.fig.axes[0].texts}
    assert {edge_label(e) for e in EDGES} <= texts
    call = drawn.arrows[EDGES[0]]
    event = drawn.arrows[EDGES[4]]
    heartbeat = drawn.arrows[EDGES[7]]
    assert call.get_linestyle() == "-"
    assert event.get_linestyle() not in ("-", "solid") and heartbeat.get_linestyle() not in ("-", "solid")
    assert event.get_linestyle() != heartbeat.get_linestyle()
    assert heartbeat.get_linewidth() < event.get_linewidth()
    assert heartbeat.get_linewidth() < call.get_linewidth()
    legend = [t.get_text() for t in drawn.legend.get_texts()]
    assert any("call" in t for t in legend) and any("event" in t for t in legend)
    assert any("heartbeat" in t for t in legend)


def test_colour_follows_errors() -> None:
    drawn = _topology_figure(NODES, EDGES)
    assert tuple(drawn.arrows[EDGES[6]].get_edgecolor()[:3]) == pytest.approx(RED)  # 1/3 failed
    assert tuple(drawn.arrows[EDGES[2]].get_edgecolor()[:3]) == pytest.approx(GREEN)


def test_opposite_edges_bend_apart() -> None:
    drawn = _topology_figure(NODES, EDGES)
    drawn.fig.canvas.draw()
    there, back = drawn.arrows[EDGES[2]], drawn.arrows[EDGES[3]]

    def middle(arrow: object) -> np.ndarray:
        path = arrow.get_path()  # type: ignore[attr-defined]
        points = arrow.get_transform().transform_path(path).to_polygons(closed_only=False)[0]  # type: ignore[attr-defined]
        return np.mean(points, axis=0)

    assert np.linalg.norm(middle(there) - middle(back)) > 15.0  # px


def test_replicas_of_a_service_sit_side_by_side_in_its_box() -> None:
    drawn = _topology_figure(NODES, EDGES)
    texts = drawn.fig.axes[0].texts
    group = drawn.groups[("edge", "planner")].get_extents()
    tags = [t for t in texts if t.get_text() in ("#0", "#1")]
    inside = [t for t in tags if group.contains(*drawn.fig.axes[0].transData.transform(t.get_position()))]
    assert sorted(t.get_text() for t in inside) == ["#0", "#1"]
    (x0, y0), (x1, y1) = (t.get_position() for t in sorted(inside, key=lambda t: t.get_text()))
    assert x0 < x1 and y0 == pytest.approx(y1)
    names = {t.get_text() for t in texts}
    assert {"ctrl", "edge", "cloud", "planner", "my|analytics", "registry"} <= names
    assert ("cloud", "my|analytics") in drawn.groups


def test_services_on_no_node_are_drawn_unplaced() -> None:
    drawn = _topology_figure({"a": ["x#0"]}, [Edge("x", "ghost", "heartbeat", 3)])
    assert UNPLACED in drawn.nodes and (UNPLACED, "ghost") in drawn.groups


@pytest.mark.parametrize(
    "nodes",
    [{}, {"a": [], "b": [], "c": []}, {"solo": ["only"]}, {f"n{k}": [f"s{k}#0"] for k in range(6)}],
)
def test_without_edges(tmp_path: Path, nodes: dict[str, list[str]]) -> None:
    path = plot_topology(nodes, [], tmp_path / "t.png", "")
    with Image.open(path) as im:
        assert im.size[0] >= 800
    assert _topology_figure(nodes, []).arrows == {}


def test_self_edge_and_many_nodes(tmp_path: Path) -> None:
    nodes = {f"n{i}": [f"s{i}{j}#{r}" for j in range(i + 1) for r in range(1 + j % 2)] for i in range(5)}
    edges = [Edge(f"s{i}0", f"s{(i + 1) % 5}0", "call", 10**i, i, float(i), 2.0 * i) for i in range(5)]
    edges.append(Edge("s21", "s21", "call", 5, 0, 0.1, 0.2))
    _assert_labels_clear(nodes, edges)
    plot_topology(nodes, edges, tmp_path / "big.png", "big")


def test_headless_without_pyplot(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; "
        "from twin.observe.topology import Edge, plot_topology; "
        f"plot_topology({{'a': ['x#0', 'y#0']}}, [Edge('x', 'y', 'call', 3, 1, 1.0, 2.0)], "
        f"Path({str(tmp_path / 'h.png')!r}), 't'); "
        "assert 'matplotlib.pyplot' not in sys.modules"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND", "WAYLAND_DISPLAY")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    assert (tmp_path / "h.png").exists()
