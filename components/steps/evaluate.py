"""Evaluate: batch-score held-out rows with the trained model and measure it against their labels."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components import data, evaluation
from components.backend import LogSink, TransformJobSpec
from components.compute import backend_for
from components.steps.train import job_name_for
from components.workload import load_workload


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
    workload = load_workload(workload_path)
    header, rows = data.read_table(str(test_path))
    data.check_table(str(test_path), header, rows, workload.columns)
    truth = [float(row[workload.columns.label]) for row in rows]
    with tempfile.TemporaryDirectory(prefix="flywheel-evaluate-") as scratch:
        features = data.write_table(
            Path(scratch) / "input" / "rows.csv", workload.columns.features, rows
        )
        output = Path(scratch) / "output"
        backend_for(compute, compute_config).transform(
            TransformJobSpec(
                job_name=job_name_for(workload.name, "evaluate", str(model_path), str(test_path)),
                model_artifact=str(model_path),
                source_dir=str(workload.source_dir),
                entry_point=workload.entry_point,
                input_location=str(features.parent),
                output_location=str(output),
            ),
            log,
        )
        predicted = evaluation.read_predictions(output / f"{features.name}.out")
    metrics = evaluation.regression_metrics(truth, predicted)
    page = evaluation.evaluation_page(
        f"{workload.name}: held-out evaluation", metrics, truth, predicted
    )
    return Evaluation(metrics=metrics, page=page, rows=len(rows))
