"""``flywheel report``: the evaluation history as a picture, and a page around it.

It answers "did retraining help?" from the evaluation history and the registry alone: a panel per
monitored metric, one line segment per champion version (never a line across models), the first
champion's held-out score at training as the baseline, the threshold, and at each retrain the
candidate's and the old champion's scores on the same held-out rows. A batch the scoring model was
trained on is drawn hollow and marked in-sample.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.components.errors import InvalidSpecError
from flywheel.components.monitoring.history import EvaluationHistory
from flywheel.components.monitoring.thresholds import Threshold, parse_threshold
from flywheel.components.registry import ModelVersion, open_registry

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PALETTE = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#319795", "#b7791f", "#4a5568")
THRESHOLD_COLOR = "#e53e3e"
BASELINE_COLOR = "#718096"
# Where a retrain's comparison is drawn: between the batch that fired it and the next one.
RETRAIN_OFFSET = 0.5


@dataclass(frozen=True)
class ScoredBatch:
    """One evaluation: a batch scored by the champion of the time."""

    batch: int
    version: int
    metrics: Mapping[str, float]
    in_sample: bool
    decision: str


@dataclass(frozen=True)
class Retrain:
    """A retrain fired at ``batch``: the candidate against the champion, on the same rows."""

    batch: int
    candidate: int
    champion: int | None
    candidate_metrics: Mapping[str, float]
    champion_metrics: Mapping[str, float]
    promoted: bool


@dataclass(frozen=True)
class QualityReport:
    model_name: str
    threshold: Threshold
    metrics: list[str]
    batches: list[ScoredBatch]
    retrains: list[Retrain]
    baseline_version: int
    baseline: Mapping[str, float] = field(default_factory=dict)


def _version_color(version: int) -> str:
    return PALETTE[(version - 1) % len(PALETTE)]


def trained_on(version: ModelVersion | None, batch: int) -> bool:
    """Whether ``batch`` was among the leading batches that trained ``version``: its score then
    measures fit, not generalisation. False where the lineage does not say."""
    if version is None:
        return False
    return batch < int(version.lineage.get("data", {}).get("training_batches") or 0)


def collect(
    records: Sequence[dict[str, Any]],
    versions: Sequence[ModelVersion],
    threshold: Threshold,
    model_name: str,
) -> QualityReport:
    """What the report shows, from the history's records and the registry's versions."""
    by_number = {v.version: v for v in versions}
    evaluations = sorted(
        (r for r in records if r["kind"] == "evaluation"),
        key=lambda r: (r["batch"], r["model_version"]),
    )
    decisions = {(r["key"], r["run_id"]): r for r in records if r["kind"] == "decision"}
    batches = [
        ScoredBatch(
            batch=r["batch"],
            version=r["model_version"],
            metrics=r["metrics"],
            in_sample=trained_on(by_number.get(r["model_version"]), r["batch"]),
            decision=decisions.get((r["key"], r["run_id"]), {}).get("reason", ""),
        )
        for r in evaluations
    ]
    trained_in_run = {v.lineage.get("run", {}).get("id"): v for v in versions}
    retrains = []
    for decision in (r for r in records if r["kind"] == "decision" and r["retrain"]):
        candidate = trained_in_run.get(decision["run_id"])
        if candidate is None:
            continue  # the retrain failed, or registered the champion's own bytes again
        compared = candidate.lineage.get("compared_with", {})
        retrains.append(
            Retrain(
                batch=decision["batch"],
                candidate=candidate.version,
                champion=compared.get("version"),
                candidate_metrics=candidate.metrics,
                champion_metrics=compared.get("metrics", {}),
                promoted=candidate.stage != "candidate",
            )
        )
    monitored = sorted({name for r in evaluations for name in r["metrics"]} - {threshold.metric})
    first = by_number.get(batches[0].version) if batches else None
    return QualityReport(
        model_name=model_name,
        threshold=threshold,
        metrics=[threshold.metric, *monitored],
        batches=batches,
        retrains=sorted(retrains, key=lambda r: r.batch),
        baseline_version=first.version if first else 0,
        baseline=dict(first.metrics) if first else {},
    )


def _segments(batches: Sequence[ScoredBatch]) -> list[list[ScoredBatch]]:
    """Consecutive evaluations by the same version; a change of champion starts a new segment."""
    segments: list[list[ScoredBatch]] = []
    for scored in batches:
        if segments and segments[-1][-1].version == scored.version:
            segments[-1].append(scored)
        else:
            segments.append([scored])
    return segments


def figure_for(report: QualityReport) -> Figure:
    """The report's figure; every drawn element carries a ``gid`` naming what it shows."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    panels = len(report.metrics)
    figure = Figure(figsize=(10, 2.6 * panels + 1.4), dpi=120, layout="constrained")
    axes = figure.subplots(
        panels + 1,
        1,
        sharex=True,
        gridspec_kw={"height_ratios": [5] * panels + [1]},
        squeeze=False,
    )[:, 0]
    segments = _segments(report.batches)
    for metric, panel in zip(report.metrics, axes, strict=False):
        for segment in segments:
            version = segment[0].version
            color = _version_color(version)
            panel.plot(
                [s.batch for s in segment],
                [s.metrics.get(metric, float("nan")) for s in segment],
                color=color,
                linewidth=1.6,
                marker="o",
                markersize=7,
                gid=f"segment-v{version}",
            )
            for scored in (s for s in segment if s.in_sample):
                panel.plot(
                    scored.batch,
                    scored.metrics.get(metric, float("nan")),
                    marker="o",
                    markersize=11,
                    markerfacecolor="white",
                    markeredgecolor=color,
                    markeredgewidth=2,
                    linestyle="none",
                    gid=f"in-sample-b{scored.batch}",
                )
        if metric in report.baseline:
            panel.axhline(
                report.baseline[metric],
                color=BASELINE_COLOR,
                linestyle=(0, (6, 3)),
                linewidth=1.2,
                gid="baseline",
            )
        if metric == report.threshold.metric:
            panel.axhline(
                report.threshold.value,
                color=THRESHOLD_COLOR,
                linestyle="--",
                linewidth=1.5,
                gid="threshold",
            )
        for retrain in report.retrains:
            _draw_retrain(panel, retrain, metric)
        panel.set_ylabel(metric)
        panel.grid(alpha=0.3)
        panel.margins(x=0.06, y=0.15)
    axes[0].set_title(f"{report.model_name}: quality on each new batch, by champion version")
    legend = [
        Line2D(
            [], [], color=PALETTE[0], marker="o", label="scored by the champion (one line each)"
        ),
        Line2D(
            [],
            [],
            color=BASELINE_COLOR,
            linestyle=(0, (6, 3)),
            label=f"baseline: v{report.baseline_version} on held-out rows at training",
        ),
        Line2D(
            [], [], color=THRESHOLD_COLOR, linestyle="--", label=f"retrain when {report.threshold}"
        ),
        Line2D(
            [],
            [],
            color="#a0aec0",
            marker="D",
            markerfacecolor="white",
            label="retrain: old champion (hollow) vs candidate (filled), same held-out rows",
        ),
    ]
    if any(s.in_sample for s in report.batches):
        legend.append(
            Line2D(
                [],
                [],
                color="#4a5568",
                marker="o",
                markerfacecolor="white",
                linestyle="none",
                label="in-sample: the model was trained on this batch",
            )
        )
    figure.legend(handles=legend, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    _draw_champion_band(axes[-1], segments)
    return figure


def _draw_retrain(panel: Any, retrain: Retrain, metric: str) -> None:
    new = retrain.candidate_metrics.get(metric)
    old = retrain.champion_metrics.get(metric)
    if new is None:
        return
    x = retrain.batch + RETRAIN_OFFSET
    if old is not None:
        panel.plot([x, x], [old, new], color="#a0aec0", linewidth=1.2, gid=_retrain_gid(retrain))
        panel.plot(
            x,
            old,
            marker="D",
            markerfacecolor="white",
            markeredgecolor=_version_color(retrain.champion or 1),
            markeredgewidth=1.8,
            linestyle="none",
        )
    panel.plot(
        x,
        new,
        marker="D",
        color=_version_color(retrain.candidate),
        linestyle="none",
        gid=None if old is not None else _retrain_gid(retrain),
    )


def _retrain_gid(retrain: Retrain) -> str:
    return f"retrain-v{retrain.candidate}-vs-v{retrain.champion or 0}"


def _draw_champion_band(band: Any, segments: Sequence[Sequence[ScoredBatch]]) -> None:
    """One bar per segment, labelled once with its version, so labels never stack up.

    A batch scored again by a later champion starts that champion's bar after the earlier one.
    """
    end = float("-inf")
    for segment in segments:
        version = segment[0].version
        start, end = max(segment[0].batch - 0.5, end), segment[-1].batch + 0.5
        band.broken_barh([(start, end - start)], (0, 1), color=_version_color(version))
        band.text(
            (start + end) / 2,
            0.5,
            f"v{version}",
            ha="center",
            va="center",
            color="white",
            fontsize=9,
            fontweight="bold",
        )
    band.set_yticks([])
    band.set_ylabel("champion", rotation=0, ha="right", va="center")
    band.set_xlabel("batch")
    band.set_xticks(sorted({s.batch for segment in segments for s in segment}))


def _retrain_cell(retrain: Retrain | None, metric: str) -> str:
    if retrain is None:
        return ""
    new = retrain.candidate_metrics.get(metric, float("nan"))
    text = f"v{retrain.candidate} {new:.4f}"
    if retrain.champion:
        old = retrain.champion_metrics.get(metric, float("nan"))
        text += f" vs v{retrain.champion} {old:.4f}"
    return text + (" (promoted)" if retrain.promoted else " (not promoted)")


def page(report: QualityReport, png: Path) -> str:
    picture = base64.b64encode(png.read_bytes()).decode()
    metric = report.threshold.metric
    retrain_at = {r.batch: r for r in report.retrains}
    header = "".join(f"<th>{html.escape(name)}</th>" for name in report.metrics)
    rows = "".join(
        f"<tr><td>{s.batch}</td><td>v{s.version}</td>"
        + "".join(f"<td>{s.metrics.get(name, float('nan')):.4f}</td>" for name in report.metrics)
        + f"<td>{'in-sample' if s.in_sample else ''}</td><td>{html.escape(s.decision)}</td>"
        f"<td>{html.escape(_retrain_cell(retrain_at.get(s.batch), metric))}</td></tr>"
        for s in report.batches
    )
    name = html.escape(report.model_name)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{name}: model quality</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "th,td{padding:4px 12px;border-bottom:1px solid #ddd;text-align:left}</style></head><body>"
        f"<h2>{name}: model quality over batches</h2>"
        f"<img alt='{html.escape(metric)} over batches' src='data:image/png;base64,{picture}'>"
        f"<table><tr><th>batch</th><th>scored by</th>{header}<th></th><th>decision</th>"
        f"<th>retrain: {html.escape(metric)} on its held-out rows</th></tr>{rows}</table>"
        "</body></html>"
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
    report = collect(records, open_registry(registry_uri).versions(model_name), rule, model_name)
    png = output_dir / f"{model_name}-quality.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    figure_for(report).savefig(png)
    html_path = output_dir / f"{model_name}-quality.html"
    html_path.write_text(page(report, png))
    return png, html_path


# A tuning run's report: ``flywheel run tuning`` draws it beside the quality report.


def best_so_far(
    trials: Sequence[Mapping[str, Any]], maximize: bool
) -> list[tuple[int, float | None, float | None]]:
    """Each trial in the order it was numbered: ``(number, objective, best objective so far)``;
    a trial with no objective (failed, pruned) carries the best so far on unchanged."""
    rows: list[tuple[int, float | None, float | None]] = []
    best: float | None = None
    for trial in sorted(trials, key=lambda t: int(t["number"])):
        value = trial.get("objective")
        if value is not None and (best is None or (value > best if maximize else value < best)):
            best = float(value)
        rows.append((int(trial["number"]), value, best))
    return rows


def tuning_figure(trials: Sequence[Mapping[str, Any]], objective: str, maximize: bool) -> Figure:
    """The objective by trial, with the best so far as a step line and the winner marked; every
    drawn element carries a ``gid`` naming what it shows."""
    from matplotlib.figure import Figure

    rows = best_so_far(trials, maximize)
    scored = [(n, v) for n, v, _ in rows if v is not None]
    figure = Figure(figsize=(8, 4), dpi=120, layout="constrained")
    panel = figure.subplots()
    panel.plot(
        [n for n, _ in scored],
        [v for _, v in scored],
        marker="o",
        linestyle="none",
        color=PALETTE[0],
        label="trial",
        gid="trials",
    )
    steps = [(n, b) for n, _, b in rows if b is not None]
    panel.step(
        [n for n, _ in steps],
        [b for _, b in steps],
        where="post",
        color=PALETTE[1],
        linewidth=1.8,
        label="best so far",
        gid="best-so-far",
    )
    winner = next((t for t in trials if t.get("best")), None)
    if winner is not None:
        panel.plot(
            int(winner["number"]),
            winner["objective"],
            marker="*",
            markersize=16,
            color=PALETTE[2],
            linestyle="none",
            label=f"best: trial {int(winner['number'])}",
            gid="best",
        )
    panel.set_xlabel("trial")
    panel.set_ylabel(objective)
    panel.set_xticks([n for n, _, _ in rows])
    panel.set_title(f"{objective} by trial ({'maximized' if maximize else 'minimized'})")
    panel.legend(loc="best")
    return figure


def write_tuning_report(
    trials: Sequence[Mapping[str, Any]],
    *,
    model_name: str,
    objective: str,
    maximize: bool,
    output_dir: Path,
) -> tuple[Path, Path]:
    """Write ``<model>-tuning.png`` and ``<model>-tuning.html``: the plot and the trial table."""
    png = output_dir / f"{model_name}-tuning.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    tuning_figure(trials, objective, maximize).savefig(png)
    names = sorted({name for t in trials for name in t.get("hyperparameters", {})})
    header = "".join(f"<th>{html.escape(name)}</th>" for name in names)
    rows = "".join(
        f"<tr><td>{'best' if t.get('best') else ''}</td><td>{int(t['number'])}</td>"
        + "".join(f"<td>{html.escape(str(t['hyperparameters'].get(n, '')))}</td>" for n in names)
        + f"<td>{'' if t.get('objective') is None else format(t['objective'], '.4f')}</td>"
        f"<td>{html.escape(str(t.get('state', '')).lower())}</td></tr>"
        for t in trials
    )
    name = html.escape(model_name)
    picture = base64.b64encode(png.read_bytes()).decode()
    page_path = output_dir / f"{model_name}-tuning.html"
    page_path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{name}: tuning</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "th,td{padding:4px 12px;border-bottom:1px solid #ddd;text-align:left}</style></head><body>"
        f"<h2>{name}: {html.escape(objective)} by trial</h2>"
        f"<img alt='{html.escape(objective)} by trial' src='data:image/png;base64,{picture}'>"
        f"<table><tr><th></th><th>trial</th>{header}<th>{html.escape(objective)}</th>"
        f"<th>state</th></tr>{rows}</table></body></html>"
    )
    return png, page_path
