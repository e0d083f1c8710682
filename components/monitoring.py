"""Model-quality monitoring: which metrics a task produces, and thresholds over them.

A threshold reads like a sentence — ``"rmse above 0.9"``, ``"r2 below 0.6"`` — and is checked
against the metrics the task actually produces before anything is scored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flywheel.components.errors import InvalidSpecError
from flywheel.components.evaluation import REGRESSION_METRICS

CLASSIFICATION_METRICS = ("accuracy", "error_rate")
METRICS_BY_TASK = {"regression": REGRESSION_METRICS, "classification": CLASSIFICATION_METRICS}
_THRESHOLD = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][\w]*)\s+(?P<direction>above|below)\s+(?P<value>\S+)\s*$"
)


@dataclass(frozen=True)
class Threshold:
    """Quality is breached when ``metric`` is above (or below) ``value``."""

    metric: str
    direction: str
    value: float

    def breached_by(self, metrics: Mapping[str, float]) -> bool:
        observed = metrics[self.metric]
        return observed > self.value if self.direction == "above" else observed < self.value

    def __str__(self) -> str:
        return f"{self.metric} {self.direction} {self.value:g}"


def parse_threshold(text: str, task: str) -> Threshold:
    """Parse ``"<metric> above|below <number>"`` and check the task produces that metric."""
    match = _THRESHOLD.match(text)
    if not match:
        raise InvalidSpecError(
            "threshold", f"{text!r} is not '<metric> above|below <number>', e.g. 'rmse above 0.9'"
        )
    try:
        value = float(match["value"])
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidSpecError("threshold", f"{match['value']!r} is not a number")
    produced = METRICS_BY_TASK[task]
    if match["metric"] not in produced:
        raise InvalidSpecError(
            "threshold",
            f"a {task} task produces no {match['metric']!r}; it produces {', '.join(produced)}",
        )
    return Threshold(match["metric"], match["direction"], value)


@dataclass(frozen=True)
class ClassificationReport:
    metrics: dict[str, float]
    labels: list[str]
    confusion: list[list[int]]
    roc: tuple[list[float], list[float], list[float]] | None


def classification_report(
    truth: Sequence[str], predicted: Sequence[str], scores: Sequence[float] | None
) -> ClassificationReport:
    """Accuracy, the confusion matrix and, for two classes with scores, the ROC curve.

    ``scores`` are the model's probability of the second label in sorted order (the positive class).
    """
    if len(truth) != len(predicted) or not truth:
        raise InvalidSpecError(
            "predictions", f"{len(predicted)} predictions for {len(truth)} labelled rows"
        )
    labels = sorted(set(truth) | set(predicted))
    index = {label: i for i, label in enumerate(labels)}
    confusion = [[0] * len(labels) for _ in labels]
    for actual, guess in zip(truth, predicted, strict=True):
        confusion[index[actual]][index[guess]] += 1
    accuracy = sum(confusion[i][i] for i in range(len(labels))) / len(truth)
    roc = None
    if scores is not None and len(labels) == 2:
        roc = _roc_curve([label == labels[1] for label in truth], scores)
    return ClassificationReport(
        {"accuracy": accuracy, "error_rate": 1 - accuracy}, labels, confusion, roc
    )


def _roc_curve(
    positive: Sequence[bool], scores: Sequence[float]
) -> tuple[list[float], list[float], list[float]]:
    """False- and true-positive rates at every distinct score threshold, highest first."""
    total_positive = sum(positive) or 1
    total_negative = (len(positive) - sum(positive)) or 1
    fpr, tpr, thresholds = [0.0], [0.0], [math.inf]
    for threshold in sorted(set(scores), reverse=True):
        flagged = [p for p, s in zip(positive, scores, strict=True) if s >= threshold]
        tpr.append(sum(flagged) / total_positive)
        fpr.append((len(flagged) - sum(flagged)) / total_negative)
        thresholds.append(threshold)
    return fpr, tpr, thresholds
