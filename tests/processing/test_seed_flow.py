"""The seed flow, locally: preprocess (your script) -> train -> evaluate (your script, writing
evaluation.json) -> condition -> register, both as the training pipeline driven by a workload and
as the pipeline a user composes from the public components (``examples/qsar/processing_pipeline``)."""

import json
from pathlib import Path

import pytest

from flywheel.components.registry import LocalModelRegistry
from flywheel.pipelines.cli import main

FAST = ("--hp", "n_estimators=20", "--hp", "n_bits=1024")
SOURCE = "builtin:chembl-CHEMBL2321810"


def _task_outputs(runs: Path, pipeline: str, task: str) -> Path:
    (folder,) = sorted(runs.glob(f"{pipeline}-*/{task}"))
    return folder


@pytest.mark.e2e
def test_workload_scripts_preprocess_before_the_split_and_evaluate_in_place_of_the_builtin(
    run_training, tmp_path: Path
) -> None:
    assert run_training("builtin:qsar-processing", SOURCE, *FAST) == 0

    (version,) = LocalModelRegistry(tmp_path / "registry").versions("qsar-pic50-processed")
    # The report's numbers, by the workload's names: mse is not a built-in metric.
    assert set(version.metrics) == {"rmse", "mse", "r2"}
    assert version.metrics["mse"] == pytest.approx(version.metrics["rmse"] ** 2)
    assert version.stage == "champion"
    # The split read the preprocessed table: canonical SMILES, one row per compound.
    train = _task_outputs(tmp_path / "runs", "flywheel-training", "prepare-data") / "train"
    rows = train.read_text().splitlines()[1:]
    smiles = [row.split(",")[1] for row in rows]
    assert len(set(smiles)) == len(smiles)


@pytest.mark.e2e
def test_the_composed_pipeline_registers_only_when_the_report_passes_the_condition(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    fast = '{"n_estimators": 20, "n_bits": 1024}'
    run = ["--home", str(home), "run", "pipeline", "qsar-processing"]
    assert main([*run, "--param", f"hyperparameters={fast}", "--param", "max_rmse=0.01"]) == 0
    registry = LocalModelRegistry(home / "registry")
    assert registry.versions("qsar-pic50-composed") == []

    assert main([*run, "--param", f"hyperparameters={fast}", "--param", "max_rmse=5"]) == 0
    (version,) = registry.versions("qsar-pic50-composed")
    report = next((home / "runs").glob("qsar-processing-*/run-processing-2/outputs"))
    evaluation = json.loads((report / "evaluation" / "evaluation.json").read_text())
    assert version.metrics["rmse"] == pytest.approx(
        evaluation["regression_metrics"]["rmse"]["value"]
    )
    assert version.metrics["regression_metrics.mse"] == pytest.approx(
        evaluation["regression_metrics"]["mse"]["value"]
    )


def test_a_bad_evaluation_section_is_refused_before_any_task_runs(
    run_training, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = Path(__file__).parents[2] / "examples" / "qsar"
    text = (examples / "workload-processing.yaml").read_text()
    workload = tmp_path / "code" / "workload.yaml"
    workload.parent.mkdir()
    for script in ("train.py", "qsar_data.py", "preprocess.py", "evaluate.py"):
        (workload.parent / script).write_text((examples / script).read_text())
    workload.write_text(text.replace("  model: /opt/ml/processing/model", "  model: /opt/model"))

    assert run_training(workload, SOURCE) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "flywheel: error: evaluation.model: /opt/model is not a folder under /opt/ml/processing"
    )
    assert not (tmp_path / "runs").exists()
