"""The train step's learning-curve page: one chart per metric, a point per logged value."""

from __future__ import annotations

import re
from xml.etree import ElementTree

from flywheel.components.tracking import learning_curves_html


def _charts(page: str) -> list[ElementTree.Element]:
    return [ElementTree.fromstring(svg) for svg in re.findall(r"<svg.*?</svg>", page, re.DOTALL)]


def test_each_metric_is_one_line_with_a_point_per_step_labelled_with_its_range() -> None:
    page = learning_curves_html(
        "job-1", {"loss": [(1, 0.9), (2, 0.5), (3, 0.25)], "accuracy": [(0, 0.5), (10, 0.75)]}
    )
    accuracy, loss = _charts(page)  # sorted by name
    namespace = "{http://www.w3.org/2000/svg}"
    points = loss.find(f"{namespace}polyline").get("points").split()
    assert len(points) == 3
    xs = [float(point.split(",")[0]) for point in points]
    ys = [float(point.split(",")[1]) for point in points]
    assert xs == sorted(xs) and ys == sorted(ys)  # later steps to the right; lower loss lower
    labels = [text.text for text in loss.iter(f"{namespace}text")]
    assert labels == ["0.9", "0.25", "1", "3", "step"]
    assert len(accuracy.findall(f"{namespace}circle")) == 2
    assert "loss: last 0.25 at step 3 (3 values)" in page


def test_names_are_escaped_and_a_job_that_logged_nothing_says_so() -> None:
    page = learning_curves_html("<job>", {})
    assert "&lt;job&gt;" in page and "<job>" not in page
    assert "The script logged no value of any defined metric." in page
    assert _charts(page) == []
