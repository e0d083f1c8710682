"""Model-quality monitoring: which metrics a task produces, and thresholds over them.

A threshold reads like a sentence — ``"rmse above 0.9"``, ``"f1 below 0.6"`` — and is checked
before anything is scored: against the metrics the evaluate step computes for the task, the side of
the number where the metric is worse, and (for ``roc_auc`` and ``log_loss``) whether the champion's
predictions carry the probabilities those need.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from flywheel.components.errors import InvalidSpecError
from flywheel.components.monitoring.scores import OBJECTIVES, classification_metrics

# Quality is lost on the side where a metric is worse: above for a minimised one, below otherwise.
_BREACH = {"minimize": "above", "maximize": "below"}
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


def parse_threshold(text: str, task: str, produced: Collection[str] | None = None) -> Threshold:
    """Parse ``"<metric> above|below <number>"``, checking the task produces that metric.

    ``produced`` narrows the task's metrics to those the champion's evaluation logged: ``roc_auc``
    and ``log_loss`` exist only when its predictions carry the positive label's probability.
    """
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
    metric, direction = match["metric"], match["direction"]
    goals = OBJECTIVES[task]
    if metric not in goals:
        raise InvalidSpecError(
            "threshold", f"a {task} task produces no {metric!r}; it produces {', '.join(goals)}"
        )
    if produced is not None and metric not in produced:
        available = [name for name in goals if name in produced]
        raise InvalidSpecError(
            "threshold",
            f"{metric} needs the probability of the positive label on each prediction line "
            f"('label,probability') and two classes; the champion's predictions give "
            f"{', '.join(available)}",
        )
    if direction != _BREACH[goals[metric]]:
        raise InvalidSpecError(
            "threshold",
            f"{metric} is worse when {'higher' if goals[metric] == 'minimize' else 'lower'}: "
            f"use '{metric} {_BREACH[goals[metric]]} <number>'",
        )
    return Threshold(metric, direction, value)


@dataclass(frozen=True)
class ClassificationReport:
    metrics: dict[str, float]
    labels: list[str]
    confusion: list[list[int]]
    roc: tuple[list[float], list[float], list[float]] | None


def classification_report(
    truth: Sequence[str], predicted: Sequence[str], scores: Sequence[float] | None
) -> ClassificationReport:
    """The evaluate step's classification metrics, the confusion matrix and, for two classes with
    scores, the ROC curve.

    ``scores`` are the model's probability of the second label in sorted order (the positive class).
    """
    metrics = classification_metrics(truth, predicted, scores)
    labels = sorted(set(truth) | set(predicted))
    index = {label: i for i, label in enumerate(labels)}
    confusion = [[0] * len(labels) for _ in labels]
    for actual, guess in zip(truth, predicted, strict=True):
        confusion[index[actual]][index[guess]] += 1
    roc = None
    if scores is not None and len(labels) == 2:
        roc = _roc_curve([label == labels[1] for label in truth], scores)
    return ClassificationReport(metrics, labels, confusion, roc)


def _roc_curve(
    positive: Sequence[bool], scores: Sequence[float]
) -> tuple[list[float], list[float], list[float]]:
    """False- and true-positive rates at every distinct score threshold, highest first."""
    total_positive = sum(positive) or 1
    total_negative = (len(positive) - sum(positive)) or 1
    # The "flag nothing" point needs a threshold above every score. Not infinity: KFP stores the
    # curve in a protobuf Struct, which refuses it; scikit-learn before 1.3 used the top score + 1.
    fpr, tpr, thresholds = [0.0], [0.0], [max(scores) + 1]
    for threshold in sorted(set(scores), reverse=True):
        flagged = [p for p, s in zip(positive, scores, strict=True) if s >= threshold]
        tpr.append(sum(flagged) / total_positive)
        fpr.append((len(flagged) - sum(flagged)) / total_negative)
        thresholds.append(threshold)
    return fpr, tpr, thresholds
