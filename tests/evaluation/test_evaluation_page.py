"""The evaluate step's page: its predicted-against-measured plot has numbered axes."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree

from flywheel.components.monitoring.scores import evaluation_page, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"


def test_ticks_are_round_numbers_inside_the_range() -> None:
    assert nice_ticks(4.13, 8.92) == [5, 6, 7, 8]
    assert nice_ticks(0.0, 1.0) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(-0.35, 0.12) == [-0.3, -0.2, -0.1, 0.0, 0.1]


def test_the_scatter_plot_numbers_both_axes_within_the_plot() -> None:
    page = evaluation_page("t", {"rmse": 0.3}, [4.2, 5.5, 8.9], [4.8, 5.1, 8.1])
    svg = ElementTree.fromstring(re.search(r"<svg.*</svg>", page, re.DOTALL).group(0))
    size = float(svg.get("width"))
    ticks = [t for t in svg.iter(f"{SVG}text") if t.get("class") == "tick"]
    bottom = [t for t in ticks if t.get("text-anchor") == "middle"]
    left = [t for t in ticks if t.get("text-anchor") == "end"]
    assert [t.text for t in bottom] == [t.text for t in left] == ["5", "6", "7", "8"]
    for tick in ticks:
        assert 0 < float(tick.get("x")) < size and 0 < float(tick.get("y")) < size
    xs = [float(t.get("x")) for t in bottom]
    ys = [float(t.get("y")) for t in left]
    assert xs == sorted(xs) and ys == sorted(ys, reverse=True)  # bigger numbers right and up
