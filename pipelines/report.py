"""``flywheel report``: the evaluation history as a picture, and a page around it.

It draws the monitored metric over batches, the threshold, where retrains fired and which
version was champion when, from the evaluation history and the registry alone.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.components.errors import InvalidSpecError
from flywheel.components.history import EvaluationHistory
from flywheel.components.monitoring import Threshold, parse_threshold
from flywheel.components.registry import ModelVersion, open_registry

PALETTE = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#319795", "#b7791f", "#4a5568")
THRESHOLD_COLOR = "#e53e3e"


@dataclass(frozen=True)
class BatchPoint:
    batch: int
    version: int
    value: float
    retrained: bool
    new_version: int | None
    promoted: bool
    decision: str


def _version_color(version: int) -> str:
    return PALETTE[(version - 1) % len(PALETTE)]


def collect_points(
    records: Sequence[dict[str, Any]], versions: Sequence[ModelVersion], threshold: Threshold
) -> list[BatchPoint]:
    """One point per evaluation, with what its decision did (retrain, and whether it promoted)."""
    decisions = {(r["key"], r["run_id"]): r for r in records if r["kind"] == "decision"}
    trained_in_run = {v.lineage.get("run", {}).get("id"): v for v in versions}
    points = []
    for evaluation in (r for r in records if r["kind"] == "evaluation"):
        decision = next(
            (d for (key, _), d in decisions.items() if key == evaluation["key"] and d["retrain"]),
            decisions.get((evaluation["key"], evaluation["run_id"]), {}),
        )
        retrained = bool(decision.get("retrain"))
        new = trained_in_run.get(decision.get("run_id")) if retrained else None
        points.append(
            BatchPoint(
                batch=evaluation["batch"],
                version=evaluation["model_version"],
                value=evaluation["metrics"][threshold.metric],
                retrained=retrained,
                new_version=new.version if new else None,
                promoted=bool(new and new.stage != "candidate"),
                decision=decision.get("reason", ""),
            )
        )
    return sorted(points, key=lambda p: (p.batch, p.version))


def draw(points: Sequence[BatchPoint], threshold: Threshold, model_name: str, path: Path) -> Path:
    """The metric over batches, the threshold line, retrain markers and the champion band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (metric_axes, band_axes) = plt.subplots(
        2, 1, figsize=(10, 5.6), dpi=120, sharex=True, gridspec_kw={"height_ratios": [5, 1]}
    )
    batches = [p.batch for p in points]
    metric_axes.plot(batches, [p.value for p in points], color="#a0aec0", linewidth=1.2, zorder=1)
    for version in sorted({p.version for p in points}):
        mine = [p for p in points if p.version == version]
        metric_axes.scatter(
            [p.batch for p in mine],
            [p.value for p in mine],
            s=70,
            color=_version_color(version),
            label=f"scored by version {version}",
            zorder=3,
            edgecolor="white",
        )
    metric_axes.axhline(
        threshold.value,
        color=THRESHOLD_COLOR,
        linestyle="--",
        linewidth=1.5,
        label=f"threshold: retrain when {threshold}",
    )
    for point in (p for p in points if p.retrained):
        metric_axes.axvline(point.batch, color="#718096", linestyle=":", linewidth=1)
        label = "retrain"
        if point.new_version:
            label += f" → v{point.new_version}" + (
                " promoted" if point.promoted else " kept as candidate"
            )
        metric_axes.annotate(
            label,
            (point.batch, point.value),
            textcoords="offset points",
            xytext=(6, 10),
            fontsize=9,
            color="#2d3748",
        )
    metric_axes.margins(x=0.08, y=0.18)  # room for the retrain labels above the highest point
    metric_axes.set_ylabel(threshold.metric)
    metric_axes.set_title(f"{model_name}: {threshold.metric} on each new batch")
    metric_axes.grid(alpha=0.3)
    metric_axes.legend(loc="upper left", fontsize=8, frameon=False)
    for point in points:
        band_axes.broken_barh(
            [(point.batch - 0.5, 1.0)], (0, 1), color=_version_color(point.version)
        )
        band_axes.text(
            point.batch,
            0.5,
            f"v{point.version}",
            ha="center",
            va="center",
            color="white",
            fontsize=9,
            fontweight="bold",
        )
    band_axes.set_yticks([])
    band_axes.set_ylabel("champion", rotation=0, ha="right", va="center")
    band_axes.set_xlabel("batch")
    band_axes.set_xticks(sorted(set(batches)))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def page(points: Sequence[BatchPoint], threshold: Threshold, model_name: str, png: Path) -> str:
    picture = base64.b64encode(png.read_bytes()).decode()
    rows = "".join(
        f"<tr><td>{p.batch}</td><td>v{p.version}</td><td>{p.value:.4f}</td>"
        f"<td>{html.escape(p.decision)}</td><td>{f'v{p.new_version}' if p.new_version else ''}</td></tr>"
        for p in points
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(model_name)}: model quality</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "th,td{padding:4px 12px;border-bottom:1px solid #ddd;text-align:left}</style></head><body>"
        f"<h2>{html.escape(model_name)}: model quality over batches</h2>"
        f"<img alt='{html.escape(threshold.metric)} over batches' src='data:image/png;base64,{picture}'>"
        f"<table><tr><th>batch</th><th>scored by</th><th>{html.escape(threshold.metric)}</th>"
        f"<th>decision</th><th>retrained</th></tr>{rows}</table></body></html>"
    )


def write_report(
    *,
    registry_uri: str,
    history_root: str,
    model_name: str,
    task: str,
    output_dir: Path,
    threshold: str | None = None,
) -> tuple[Path, Path]:
    """Write ``<model>-quality.png`` and ``<model>-quality.html``; refuses an empty history."""
    records = EvaluationHistory(history_root).records(model_name)
    if not any(r["kind"] == "evaluation" for r in records):
        raise InvalidSpecError(
            "history", f"no evaluations of {model_name} in {history_root}: run an evaluation first"
        )
    if threshold is None:
        decisions = [r for r in records if r["kind"] == "decision" and r.get("threshold")]
        if not decisions:
            raise InvalidSpecError("threshold", "the history records none; pass --threshold")
        threshold = decisions[-1]["threshold"]
    rule = parse_threshold(threshold, task)
    points = collect_points(records, open_registry(registry_uri).versions(model_name), rule)
    png = draw(points, rule, model_name, output_dir / f"{model_name}-quality.png")
    html_path = output_dir / f"{model_name}-quality.html"
    html_path.write_text(page(points, rule, model_name, png))
    return png, html_path
