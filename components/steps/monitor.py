"""Monitor model performance: the champion's predictions on a batch against its ground truth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flywheel.components.contract.workload import load_workload
from flywheel.components.data.rows import read_table
from flywheel.components.errors import InvalidSpecError
from flywheel.components.monitoring import scores as evaluation
from flywheel.components.monitoring.thresholds import ClassificationReport, classification_report
from flywheel.components.steps.scoring import read_scored


@dataclass(frozen=True)
class MonitorResult:
    metrics: dict[str, float]
    page: str
    classification: ClassificationReport | None


def monitor_performance(
    *, workload_path: str, batch_path: Path, prediction_paths: Sequence[Path], title: str
) -> MonitorResult:
    workload = load_workload(workload_path)
    _, rows = read_table(str(batch_path))
    columns = workload.columns
    scored = read_scored(prediction_paths)
    unscored = [row[columns.id] for row in rows if row[columns.id] not in scored]
    if unscored:
        raise InvalidSpecError(
            "predictions", f"{len(unscored)} row(s) were not scored, e.g. id {unscored[0]}"
        )
    if workload.task == "classification":
        truth = [row[columns.label] for row in rows]
        predicted = [scored[row[columns.id]].split(",")[0] for row in rows]
        with_scores = all("," in scored[row[columns.id]] for row in rows)
        scores = (
            [float(scored[row[columns.id]].split(",")[1]) for row in rows] if with_scores else None
        )
        report = classification_report(truth, predicted, scores)
        page = evaluation.metrics_page(title, report.metrics, len(rows))
        return MonitorResult(report.metrics, page, report)
    truth = [float(row[columns.label]) for row in rows]
    predicted = [float(scored[row[columns.id]].split(",")[0]) for row in rows]
    metrics = evaluation.regression_metrics(truth, predicted)
    return MonitorResult(
        metrics, evaluation.evaluation_page(title, metrics, truth, predicted), None
    )
