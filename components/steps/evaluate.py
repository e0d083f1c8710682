"""Evaluate: batch-score held-out rows with the trained model and measure it against their labels,
or run the workload's own evaluation script (``steps.script_evaluation``) in its place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.components.compute.backend import LogSink
from flywheel.components.contract.workload import load_workload
from flywheel.components.data.rows import read_table
from flywheel.components.errors import InvalidSpecError
from flywheel.components.monitoring import scores as evaluation
from flywheel.components.steps.scoring import transform_rows
from flywheel.components.steps.script_evaluation import evaluate_with_script
from flywheel.components.steps.train import job_name_for


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    page: str
    rows: int


def evaluate_model(
    *,
    workload_path: str,
    compute: str,
    compute_config: Mapping[str, Any] | None = None,
    model_path: Path,
    test_path: Path,
    log: LogSink = print,
) -> Evaluation:
    # The checks need pyarrow's compute kernels: imported here, as score-champion imports this
    # module before it knows whether there is a champion to evaluate.
    from flywheel.components.data import batches

    workload = load_workload(workload_path)
    header, rows = read_table(str(test_path))
    batches.check_table(str(test_path), header, rows, workload.columns, task=workload.task)
    if workload.evaluation is not None:
        metrics, page = evaluate_with_script(
            workload=workload,
            compute=compute,
            compute_config=compute_config,
            model_path=model_path,
            rows=rows,
            log=log,
        )
        return Evaluation(metrics=metrics, page=page, rows=len(rows))
    lines = transform_rows(
        workload=workload,
        compute=compute,
        compute_config=compute_config,
        model_path=model_path,
        rows=rows,
        job_name=job_name_for(workload.name, "evaluate", str(model_path), str(test_path)),
        log=log,
    )
    title = f"{workload.name}: held-out evaluation"
    if workload.task == "classification":
        truth_labels = [row[workload.columns.label] for row in rows]
        predicted_labels, scores = evaluation.label_predictions(lines)
        metrics = evaluation.classification_metrics(truth_labels, predicted_labels, scores)
        page = evaluation.metrics_page(title, metrics, len(rows))
    else:
        truth = [float(row[workload.columns.label]) for row in rows]
        predicted = evaluation.numeric_predictions(lines)
        metrics = evaluation.regression_metrics(truth, predicted)
        page = evaluation.evaluation_page(title, metrics, truth, predicted)
    if workload.objective_metric not in metrics:
        raise InvalidSpecError(
            "objective.metric",
            f"{workload.objective_metric} needs the probability of the positive label on each "
            "prediction line ('label,probability') and two classes in the test rows",
        )
    return Evaluation(metrics=metrics, page=page, rows=len(rows))
