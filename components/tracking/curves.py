"""Learning curves as one self-contained HTML page: an inline SVG chart per metric.

The train task renders it for the Kubeflow UI's HTML viewer. Plain strings, no plotting library:
matplotlib alone would add about a second to every training task's start-up.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

_WIDTH, _HEIGHT = 420, 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 16, 36


def _number(value: float) -> str:
    return f"{value:.4g}"


def _chart(name: str, points: Sequence[Sequence[float]]) -> str:
    """One metric's values by step: a line with a dot per value, axes labelled at their ends."""
    steps = [float(step) for step, _ in points]
    values = [float(value) for _, value in points]
    low_step, high_step = min(steps), max(steps)
    low, high = min(values), max(values)
    plot_width = _WIDTH - _LEFT - _RIGHT
    plot_height = _HEIGHT - _TOP - _BOTTOM

    def x(step: float) -> float:
        spread = high_step - low_step
        return _LEFT + (plot_width * (step - low_step) / spread if spread else plot_width / 2)

    def y(value: float) -> float:
        spread = high - low
        return _TOP + (plot_height * (high - value) / spread if spread else plot_height / 2)

    coordinates = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in zip(steps, values, strict=True))
    dots = "".join(
        f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="2.5"><title>step {s:g}: {_number(v)}'
        "</title></circle>"
        for s, v in zip(steps, values, strict=True)
    )
    bottom = _HEIGHT - _BOTTOM
    return (
        f"<figure><figcaption>{html.escape(name)}: last {_number(values[-1])} at step "
        f"{steps[-1]:g} ({len(values)} value{'s' if len(values) != 1 else ''})</figcaption>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'role="img" aria-label="{html.escape(name)} by step">'
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{bottom}" class="axis"/>'
        f'<line x1="{_LEFT}" y1="{bottom}" x2="{_WIDTH - _RIGHT}" y2="{bottom}" class="axis"/>'
        f'<text x="{_LEFT - 6}" y="{_TOP + 4}" text-anchor="end">{_number(high)}</text>'
        f'<text x="{_LEFT - 6}" y="{bottom}" text-anchor="end">{_number(low)}</text>'
        f'<text x="{_LEFT}" y="{_HEIGHT - 18}" text-anchor="start">{low_step:g}</text>'
        f'<text x="{_WIDTH - _RIGHT}" y="{_HEIGHT - 18}" text-anchor="end">{high_step:g}</text>'
        f'<text x="{_LEFT + plot_width / 2}" y="{_HEIGHT - 4}" text-anchor="middle">step</text>'
        f'<polyline points="{coordinates}" class="curve"/>{dots}</svg></figure>'
    )


def learning_curves_html(title: str, series: Mapping[str, Sequence[Sequence[float]]]) -> str:
    """The page: ``title``, then each metric's curve; a sentence when nothing was logged."""
    charts = "".join(_chart(name, points) for name, points in sorted(series.items()) if points)
    body = charts or "<p>The script logged no value of any defined metric.</p>"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:12px} figure{display:inline-block;margin:8px}"
        "figcaption{font-size:14px;margin-bottom:4px} text{font-size:11px;fill:#333}"
        ".axis{stroke:#888} .curve{fill:none;stroke:#1f77b4;stroke-width:2} circle{fill:#1f77b4}"
        f"</style></head><body><h3>Learning curves: {html.escape(title)}</h3>{body}</body></html>"
    )
