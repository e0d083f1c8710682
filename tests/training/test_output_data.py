"""What a script writes to ``SM_OUTPUT_DATA_DIR`` outlives the step: ``train_model``'s
``output_data`` artifact is its ``output.tar.gz``, empty but valid when it wrote nothing. What it
logs becomes the step's ``metrics``: final values for the Kubeflow UI, each metric's series in
the file."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kfp import dsl

from flywheel.components.training import train_model

WRITES_OUTPUT_DATA = """
import json, os, pathlib
output = pathlib.Path(os.environ["SM_OUTPUT_DATA_DIR"])
(output / "metrics.json").write_text(json.dumps({"rmse": 0.25}))
(output / "plots").mkdir()
(output / "plots" / "loss.txt").write_text("0.5 0.25")
pathlib.Path(os.environ["SM_MODEL_DIR"], "model.txt").write_text("fitted")
"""
WRITES_ONLY_THE_MODEL = """
import os, pathlib
pathlib.Path(os.environ["SM_MODEL_DIR"], "model.txt").write_text("fitted")
"""
LOGS_A_LEARNING_CURVE = """
import os, pathlib
for epoch, loss in ((1, 0.9), (2, 0.5), (3, 0.25)):
    print(f"epoch {epoch}: loss={loss}", flush=True)
print("loss=0.2 (after the last epoch)", flush=True)
pathlib.Path(os.environ["SM_MODEL_DIR"], "model.txt").write_text("fitted")
"""


@dataclass(frozen=True)
class TrainOutputs:
    model: dsl.Model
    output_data: dsl.Dataset
    metrics: dsl.Metrics
    learning_curves: dsl.HTML


def run_component(
    workload: Path, table: Path, tmp_path: Path, compute: str = "local", tracking_uri: str = ""
) -> TrainOutputs:
    """``train_model``'s own body, as a KFP task runs it, with artifacts at local paths."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir(exist_ok=True)
    outputs = TrainOutputs(
        model=dsl.Model(uri=str(artifacts / "model")),
        output_data=dsl.Dataset(uri=str(artifacts / "output_data")),
        metrics=dsl.Metrics(uri=str(artifacts / "metrics")),
        learning_curves=dsl.HTML(uri=str(artifacts / "learning_curves")),
    )
    train_model.python_func(
        workload=str(workload),
        compute=compute,
        compute_config={},
        hyperparameters={},
        code_fingerprint="test",
        train=dsl.Dataset(uri=str(table)),
        test=dsl.Dataset(uri=str(table)),
        tracking_uri=tracking_uri,
        **vars(outputs),
    )
    return outputs


def test_the_scripts_output_data_is_kept_as_the_steps_output_tar_gz(
    make_workload: Callable[[str], Path], toy_table: Path, tmp_path: Path
) -> None:
    output_data = run_component(make_workload(WRITES_OUTPUT_DATA), toy_table, tmp_path).output_data
    with tarfile.open(output_data.path) as archive:
        assert sorted(archive.getnames()) == ["metrics.json", "plots", "plots/loss.txt"]
        assert json.load(archive.extractfile("metrics.json")) == {"rmse": 0.25}
    assert output_data.metadata["format"] == "output.tar.gz"
    assert output_data.metadata["empty"] is False
    assert output_data.metadata["compute"] == "local"


def test_a_script_that_writes_no_output_data_still_gives_a_valid_empty_archive(
    make_workload: Callable[[str], Path], toy_table: Path, tmp_path: Path
) -> None:
    output_data = run_component(
        make_workload(WRITES_ONLY_THE_MODEL), toy_table, tmp_path
    ).output_data
    with tarfile.open(output_data.path) as archive:
        assert archive.getnames() == []
    assert output_data.metadata["empty"] is True
    assert "wrote nothing to SM_OUTPUT_DATA_DIR" in output_data.metadata["note"]


def test_what_the_script_logged_is_the_steps_metrics_with_each_series_in_its_file(
    make_workload: Callable[[str], Path], toy_table: Path, tmp_path: Path
) -> None:
    metrics = run_component(make_workload(LOGS_A_LEARNING_CURVE), toy_table, tmp_path).metrics
    assert metrics.metadata == {"loss": 0.2}  # the last value, as SageMaker's final metric
    curves = json.loads(Path(metrics.path).read_text())
    assert curves["job_name"].startswith("toy-model-")
    # The epoch on the line is the step; a line with none takes the step after the previous one.
    assert curves["series"] == {"loss": [[1, 0.9], [2, 0.5], [3, 0.25], [4, 0.2]]}
