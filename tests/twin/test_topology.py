"""Tests of twin.observe.topology: the PNG map of nodes, services and calls."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from twin.observe.topology import (
    RED_AT,
    CallStats,
    _node_boxes,
    _topology_figure,
    arrow_width,
    call_label,
    error_colour,
    plot_topology,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RED = error_colour(1.0)
GREEN = error_colour(0.0)

NODES = ["ops", "robot"]
SERVICES = {
    "operator": "ops",
    "gateway": "robot",
    "planner": "robot",
    "driver": "robot",
    "telemetry": "robot",
}


def _calls(errors: int = 0) -> dict[tuple[str, str], CallStats]:
    return {
        ("operator", "gateway"): CallStats(1200, errors, 4.2),
        ("gateway", "planner"): CallStats(1200, 0, 1.1),
        ("planner", "driver"): CallStats(30000, 0, 0.52),
        ("driver", "telemetry"): CallStats(3000, 0, None),
    }


def _is_red(rgb: np.ndarray) -> np.ndarray:
    """Pixels close to the red of a failing call (antialiased edges aside)."""
    r, g, b = (rgb[..., k].astype(int) for k in range(3))
    return (r > 170) & (g < 60) & (b < 60)


def test_writes_png_of_expected_size(tmp_path: Path) -> None:
    path = plot_topology(NODES, SERVICES, _calls(), tmp_path / "sub" / "topology.png", title="pan/tilt")
    assert path == tmp_path / "sub" / "topology.png"
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as im:
        assert im.size == (1000, 700)
        im.verify()


def test_png_has_no_software_tag_and_is_deterministic(tmp_path: Path) -> None:
    a = plot_topology(NODES, SERVICES, _calls(7), tmp_path / "a.png")
    b = plot_topology(NODES, SERVICES, _calls(7), tmp_path / "b.png")
    assert a.read_bytes() == b.read_bytes()
    assert b"matplotlib" not in a.read_bytes()


@pytest.mark.parametrize(
    ("nodes", "services"),
    [(NODES, SERVICES), (["a", "b", "c"], {}), ([], {}), (["solo"], {"only": "solo"})],
)
def test_empty_calls_work(tmp_path: Path, nodes: list[str], services: dict[str, str]) -> None:
    path = plot_topology(nodes, services, {}, tmp_path / "t.png")
    with Image.open(path) as im:
        assert im.size == (1000, 700)
    fig, arrows = _topology_figure(nodes, services, {})
    assert arrows == {}
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("no calls" in t or "no nodes" in t for t in texts)


def test_error_colour_scale() -> None:
    assert error_colour(0.0) == GREEN
    assert GREEN[1] > 0.5 and GREEN[0] < 0.2  # green
    assert RED[0] > 0.8 and RED[1] == 0.0 and RED[2] == 0.0  # red
    for frac in (RED_AT, 0.25, 0.5, 1.0, 7.0):
        assert error_colour(frac) == pytest.approx(RED)
    redness = [r - g for r, g, _ in (error_colour(f) for f in np.linspace(0.0, RED_AT, 21))]
    assert redness == sorted(redness)  # redder as errors grow
    mid = error_colour(RED_AT / 2.0)
    assert mid != GREEN and mid != RED


@pytest.mark.parametrize(("errors", "red"), [(0, False), (12, False), (240, True), (300, True), (1200, True)])
def test_arrow_colour_follows_error_rate(errors: int, red: bool) -> None:
    calls = _calls(errors)  # operator -> gateway has 1200 messages
    _, arrows = _topology_figure(NODES, SERVICES, calls)
    assert set(arrows) == set(calls)
    rgb = tuple(arrows[("operator", "gateway")].get_edgecolor()[:3])
    if red:
        assert rgb == pytest.approx(RED)
    else:
        assert rgb[0] < RED[0] and rgb != pytest.approx(RED)
    for pair in calls:  # the other calls have no errors
        if pair != ("operator", "gateway"):
            assert tuple(arrows[pair].get_edgecolor()[:3]) == pytest.approx(GREEN)


def test_failing_call_is_drawn_red_in_the_png(tmp_path: Path) -> None:
    calls = {("operator", "gateway"): CallStats(1000, 500, 3.0)}
    fig, arrows = _topology_figure(NODES, SERVICES, calls)
    path = tmp_path / "red.png"
    fig.savefig(path, format="png", dpi=fig.dpi)
    rgb = np.asarray(Image.open(path).convert("RGB"))
    assert _is_red(rgb).sum() > 500  # a wide red arrow
    # A point a quarter of the way along the arrow is red.
    arrow = arrows[("operator", "gateway")]
    shaft = arrow.get_transform().transform_path(arrow.get_path()).to_polygons(closed_only=False)[0]
    x, y = shaft[len(shaft) // 4]  # display coordinates, y up
    row, col = int(round(rgb.shape[0] - y)), int(round(x))
    patch = rgb[row - 1 : row + 2, col - 1 : col + 2]
    assert _is_red(patch).any()
    # Without errors nothing is red.
    plot_topology(NODES, SERVICES, {("operator", "gateway"): CallStats(1000, 0, 3.0)}, tmp_path / "ok.png")
    assert _is_red(np.asarray(Image.open(tmp_path / "ok.png").convert("RGB"))).sum() == 0


def test_width_grows_with_traffic() -> None:
    widths = [arrow_width(m) for m in (0, 1, 10, 100, 1000, 10**5, 10**9)]
    assert widths == sorted(widths) and widths[0] == 1.0 and widths[-1] == 10.0
    assert arrow_width(999) - arrow_width(99) == pytest.approx(arrow_width(99) - arrow_width(9))  # log
    calls = {("gateway", "planner"): CallStats(10, 0, 1.0), ("planner", "driver"): CallStats(10000, 0, 1.0)}
    _, arrows = _topology_figure(NODES, SERVICES, calls)
    assert arrows[("planner", "driver")].get_linewidth() > arrows[("gateway", "planner")].get_linewidth()


def test_labels() -> None:
    assert call_label(CallStats(1200, 30, 4.2)) == "1200 msgs, 2.5% err, p99 4.20 ms"
    assert call_label(CallStats(5, 0, 123.4)) == "5 msgs, 0.0% err, p99 123 ms"
    assert call_label(CallStats(0, 0, None)) == "0 msgs, 0.0% err, p99 n/a"
    assert call_label(CallStats(10, 20, 15.0)) == "10 msgs, 100.0% err, p99 15.0 ms"
    fig, _ = _topology_figure(NODES, SERVICES, _calls(), title="a title")
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"a title", "ops", "robot", *SERVICES} <= texts
    assert {call_label(s) for s in _calls().values()} <= texts


def test_idle_call_is_grey_and_self_call_is_drawn(tmp_path: Path) -> None:
    calls = {("planner", "planner"): CallStats(10, 0, 0.1), ("gateway", "driver"): CallStats(0, 0, None)}
    _, arrows = _topology_figure(NODES, SERVICES, calls)
    r, g, b = arrows[("gateway", "driver")].get_edgecolor()[:3]
    assert r == g == b
    assert tuple(arrows[("planner", "planner")].get_edgecolor()[:3]) == pytest.approx(GREEN)
    plot_topology(NODES, SERVICES, calls, tmp_path / "loop.png")


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="ghost"):
        _topology_figure(NODES, SERVICES, {("operator", "ghost"): CallStats(1, 0, 1.0)})
    with pytest.raises(ValueError):
        CallStats(-1, 0, None)
    with pytest.raises(ValueError):
        CallStats(1, -1, None)


def test_nodes_missing_from_list_are_added() -> None:
    fig, _ = _topology_figure(["ops"], {"operator": "ops", "driver": "robot"}, {})
    assert "robot" in {t.get_text() for t in fig.axes[0].texts}


@pytest.mark.parametrize("n", range(1, 11))
def test_node_boxes_fit_and_do_not_overlap(n: int) -> None:
    boxes = _node_boxes(n)
    assert len(boxes) == n
    for box in boxes:
        assert box.w > 0.5 and box.h > 0.5
        assert box.x0 >= 0.0 and box.x0 + box.w <= 10.0 + 1e-9
        assert box.y0 >= 0.0 and box.y0 + box.h <= 7.0 + 1e-9
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart_x = a.x0 + a.w <= b.x0 or b.x0 + b.w <= a.x0
            apart_y = a.y0 + a.h <= b.y0 or b.y0 + b.h <= a.y0
            assert apart_x or apart_y


def test_many_nodes_and_services(tmp_path: Path) -> None:
    nodes = [f"n{i}" for i in range(6)]
    services = {f"s{i}{j}": f"n{i}" for i in range(6) for j in range(i + 1)}
    calls = {(f"s{i}0", f"s{(i + 1) % 6}0"): CallStats(10**i, i, float(i)) for i in range(6)}
    path = plot_topology(nodes, services, calls, tmp_path / "big.png")
    with Image.open(path) as im:
        assert im.size == (1000, 700)


def test_headless_without_pyplot(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; "
        "from twin.observe.topology import CallStats, plot_topology; "
        f"plot_topology(['a'], {{'x': 'a', 'y': 'a'}}, {{('x', 'y'): CallStats(3, 1, 2.0)}}, "
        f"Path({str(tmp_path / 'h.png')!r})); "
        "assert 'matplotlib.pyplot' not in sys.modules"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND", "WAYLAND_DISPLAY")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
    assert (tmp_path / "h.png").exists()
