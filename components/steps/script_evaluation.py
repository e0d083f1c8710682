"""Evaluate with the workload's own script: a processing job writes ``evaluation.json``.

This is SageMaker Pipelines' evaluation step: the script gets the model as ``model.tar.gz`` and the
held-out rows, laid out as the workload's ``test`` channel (so a headerless, label-first script
reads them as it does in training), and the report's values at the declared JSON paths become the
metrics the registry records and the quality gate compares.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flywheel.components.compute.backend import LogSink
from flywheel.components.contract.channels import write_channel
from flywheel.components.contract.processing import ProcessingInput, ProcessingOutput
from flywheel.components.contract.workload import Workload
from flywheel.components.data.rows import Row
from flywheel.components.monitoring import reports
from flywheel.components.monitoring.scores import metrics_page
from flywheel.components.steps.process import run_processing

REPORT_OUTPUT = "evaluation"


def lay_out_test_rows(workload: Workload, rows: list[Row], folder: Path) -> Path:
    """The held-out rows as the workload's ``test`` channel lays them out; the folder they are in."""
    layout = next((item for item in workload.channels if item.split == "test"), None)
    if layout is None:
        layout = next(item for item in workload.channels if item.name == "train")
    return write_channel(layout, rows, workload.columns.label, folder).parent


def evaluate_with_script(
    *,
    workload: Workload,
    compute: str,
    compute_config: Mapping[str, Any] | None,
    model_path: Path,
    rows: list[Row],
    log: LogSink = print,
) -> tuple[dict[str, float], str]:
    """The declared metrics from the script's report, and a page showing them."""
    script = workload.evaluation
    assert script is not None, "only for workloads with an evaluation script"
    with tempfile.TemporaryDirectory(prefix="flywheel-evaluate-") as scratch:
        root = Path(scratch)
        test_folder = lay_out_test_rows(workload, rows, root / "test")
        model_folder = root / "model"
        model_folder.mkdir()
        shutil.copy2(model_path, model_folder / "model.tar.gz")
        processed = run_processing(
            source_dir=str(script.source_dir),
            entry_point=script.entry_point,
            compute=compute,
            compute_config=compute_config,
            inputs=(
                ProcessingInput("model", str(model_folder), script.paths["model"]),
                ProcessingInput("test", str(test_folder), script.paths["test"]),
            ),
            outputs=(ProcessingOutput(REPORT_OUTPUT, script.paths["output"]),),
            outputs_dir=root / "outputs",
            arguments=script.arguments,
            environment=script.environment,
            job_prefix=f"{workload.name}-evaluate",
            log=log,
        )
        report = reports.load_report(
            reports.find_report(Path(processed.outputs[REPORT_OUTPUT]), script.report)
        )
    metrics = {name: reports.value_at(report, path) for name, path in script.metrics.items()}
    title = f"{workload.name}: evaluation by {script.entry_point}"
    return metrics, metrics_page(title, metrics, len(rows))
