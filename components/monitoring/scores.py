"""Scoring a model against labelled rows: metrics, and a page the Kubeflow UI can show.

The model is scored through the compute backend's batch transform, served by the user's own
inference handlers, so what is measured is what batch scoring will produce later.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from flywheel.components.errors import InvalidSpecError

REGRESSION_METRICS = ("rmse", "mae", "r2")
CLASSIFICATION_OBJECTIVES = ("accuracy", "f1", "roc_auc", "log_loss")
# What the evaluate step measures for each task, and which way is better: the possible objectives.
OBJECTIVES: dict[str, dict[str, str]] = {
    "regression": {"rmse": "minimize", "mae": "minimize", "r2": "maximize"},
    "classification": {
        "accuracy": "maximize",
        "f1": "maximize",
        "roc_auc": "maximize",
        "log_loss": "minimize",
    },
}
# Computed only when every prediction line carries the positive label's probability and the rows
# hold two classes: a champion whose predictions lack them cannot be monitored on these.
PROBABILITY_METRICS = ("roc_auc", "log_loss")
# Probabilities are clipped before the logarithm, as scikit-learn's log_loss does.
_EPSILON = 1e-15
# Metadata a step writes on a Metrics artifact beside the logged metrics; never compared.
BOOKKEEPING_KEYS = ("rows", "version")


def logged_metrics(metadata: Mapping[str, Any]) -> dict[str, float]:
    """The metrics logged on a ``dsl.Metrics`` artifact, without the bookkeeping beside them."""
    return {
        name: float(value)
        for name, value in metadata.items()
        if name not in BOOKKEEPING_KEYS
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    }


def regression_metrics(truth: Sequence[float], predicted: Sequence[float]) -> dict[str, float]:
    """RMSE, MAE and R² of ``predicted`` against ``truth``."""
    if len(truth) != len(predicted):
        raise InvalidSpecError(
            "predictions", f"{len(predicted)} predictions for {len(truth)} labelled rows"
        )
    if not truth:
        raise InvalidSpecError("predictions", "no rows to evaluate")
    errors = [p - t for t, p in zip(truth, predicted, strict=True)]
    mean = sum(truth) / len(truth)
    total = sum((t - mean) ** 2 for t in truth)
    squared = sum(e * e for e in errors)
    return {
        "rmse": math.sqrt(squared / len(errors)),
        "mae": sum(abs(e) for e in errors) / len(errors),
        "r2": 1.0 - squared / total if total > 0 else 0.0,
    }


def classification_metrics(
    truth: Sequence[str], predicted: Sequence[str], scores: Sequence[float] | None
) -> dict[str, float]:
    """Accuracy and F1 (binary: of the second label in sorted order; else macro), and with a
    probability of that label per row, ROC AUC and log loss.

    ``scores`` follow the monitoring convention: the probability of the positive (second) label.
    """
    if len(truth) != len(predicted):
        raise InvalidSpecError(
            "predictions", f"{len(predicted)} predictions for {len(truth)} labelled rows"
        )
    if not truth:
        raise InvalidSpecError("predictions", "no rows to evaluate")
    labels = sorted(set(truth) | set(predicted))
    pairs = list(zip(truth, predicted, strict=True))
    metrics = {"accuracy": sum(t == p for t, p in pairs) / len(pairs)}
    scored = labels[-1:] if len(labels) == 2 else labels
    metrics["f1"] = sum(_f1(pairs, label) for label in scored) / len(scored)
    if scores is not None and len(set(truth)) == 2:
        positive = [t == labels[-1] for t in truth]
        metrics["roc_auc"] = _roc_auc(positive, scores)
        metrics["log_loss"] = -sum(
            math.log(min(max(s if y else 1 - s, _EPSILON), 1.0))
            for y, s in zip(positive, scores, strict=True)
        ) / len(positive)
    return metrics


def _f1(pairs: Sequence[tuple[str, str]], label: str) -> float:
    hits = sum(t == p == label for t, p in pairs)
    claimed = sum(p == label for _, p in pairs)
    actual = sum(t == label for t, _ in pairs)
    return 2 * hits / (claimed + actual) if claimed + actual else 0.0


def _roc_auc(positive: Sequence[bool], scores: Sequence[float]) -> float:
    """The chance a positive row scores above a negative one (ties count half): Mann-Whitney U."""
    ranked = sorted(zip(scores, positive, strict=True))
    rank_sum, index = 0.0, 0
    while index < len(ranked):
        end = index
        while end < len(ranked) and ranked[end][0] == ranked[index][0]:
            end += 1
        average_rank = (index + 1 + end) / 2
        rank_sum += average_rank * sum(p for _, p in ranked[index:end])
        index = end
    positives = sum(positive)
    negatives = len(positive) - positives
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def numeric_predictions(lines: Sequence[str]) -> list[float]:
    """The number at the start of each prediction line, as the default ``output_fn`` writes it."""
    values = []
    for number, line in enumerate(lines, start=1):
        try:
            values.append(float(line.split(",")[0]))
        except ValueError:
            raise InvalidSpecError(
                "predictions", f"line {number} is not a number: {line!r}"
            ) from None
    return values


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2 or 5 times a power of ten) in [low, high]."""
    span = (high - low) or abs(high) or 1.0
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10) + 0.0)  # + 0.0 turns -0.0 into 0.0
        value += step
    return ticks


def label_predictions(lines: Sequence[str]) -> tuple[list[str], list[float] | None]:
    """Each line's label and, when every line has one, the probability after it (``label,p``)."""
    fields = [line.split(",") for line in lines]
    labels = [parts[0].strip() for parts in fields]
    if not all(len(parts) > 1 for parts in fields):
        return labels, None
    try:
        return labels, [float(parts[1]) for parts in fields]
    except ValueError:
        return labels, None


def _scatter_svg(truth: Sequence[float], predicted: Sequence[float], size: int = 320) -> str:
    """Predicted against measured, on the same scale, with numbered axes and the diagonal."""
    low = min(min(truth), min(predicted))
    high = max(max(truth), max(predicted))
    span = (high - low) or 1.0
    pad, left = 30, 48  # room for the tick numbers on the left and at the bottom

    def x(value: float) -> float:
        return left + (value - low) / span * (size - left - pad)

    def y(value: float) -> float:
        return size - left - (value - low) / span * (size - left - pad)

    points = "".join(
        f'<circle cx="{x(t):.1f}" cy="{y(p):.1f}" r="2.5" fill="#2b6cb0" fill-opacity="0.55"/>'
        for t, p in zip(truth, predicted, strict=True)
    )
    ticks = "".join(
        f'<line x1="{x(t):.1f}" y1="{size - left}" x2="{x(t):.1f}" y2="{size - left + 4}" stroke="#666"/>'
        f'<text class="tick" x="{x(t):.1f}" y="{size - left + 16}" text-anchor="middle" '
        f'font-size="10">{t:g}</text>'
        f'<line x1="{left - 4}" y1="{y(t):.1f}" x2="{left}" y2="{y(t):.1f}" stroke="#666"/>'
        f'<text class="tick" x="{left - 6}" y="{y(t) + 3:.1f}" text-anchor="end" '
        f'font-size="10">{t:g}</text>'
        for t in nice_ticks(low, high)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" role="img" '
        f'aria-label="predicted against measured">'
        f'<rect width="{size}" height="{size}" fill="white" stroke="#ccc"/>'
        f'<rect x="{left}" y="{pad}" width="{size - left - pad}" height="{size - left - pad}" '
        f'fill="none" stroke="#999"/>'
        f'<line x1="{x(low):.1f}" y1="{y(low):.1f}" x2="{x(high):.1f}" y2="{y(high):.1f}" '
        f'stroke="#999" stroke-dasharray="4"/>'
        f"{ticks}{points}"
        f'<text x="{(left + size - pad) / 2}" y="{size - 8}" text-anchor="middle" '
        f'font-size="12">measured</text>'
        f'<text x="12" y="{size / 2}" font-size="12" transform="rotate(-90 12 {size / 2})" '
        f'text-anchor="middle">predicted</text></svg>'
    )


def metrics_page(title: str, metrics: Mapping[str, float], rows: int, figure: str = "") -> str:
    """A self-contained HTML page: the metrics table and an optional figure."""
    table = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{value:.4f}</td></tr>"
        for name, value in metrics.items()
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "th,td{padding:4px 12px;border-bottom:1px solid #ddd;text-align:left}</style></head><body>"
        f"<h2>{html.escape(title)}</h2><p>{rows} rows</p>"
        f"<table>{table}</table>{figure}</body></html>"
    )


def evaluation_page(
    title: str, metrics: Mapping[str, float], truth: Sequence[float], predicted: Sequence[float]
) -> str:
    """The metrics table and a predicted-against-measured plot."""
    return metrics_page(title, metrics, len(truth), _scatter_svg(truth, predicted))
