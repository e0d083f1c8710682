"""SageMaker-style training scripts run unchanged through ``flywheel run training`` and the EKS path.

Each folder holds a script written as SageMaker's example scripts are (argparse hyperparameters,
``SM_*`` variables, label-first headerless CSV, hard-coded ``/opt/ml`` paths, ``requirements.txt``,
PyTorch), its ``workload.yaml`` and a small data file. Every run overrides one hyperparameter with
a value that is neither the workload's default nor the script's own, and checks that the script
did what that value says (the trees, leaves, epochs... it reports) and the registry recorded it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from flywheel.components.local.opt_ml import private_mounts_available
from flywheel.components.registry import LocalModelRegistry
from flywheel.components.steps.prepare import prepare_data
from flywheel.components.steps.train import train_model
from flywheel.components.workload import load_workload
from flywheel.pipelines.cli import main

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Case:
    folder: str
    data: str
    hyperparameter: str
    value: int
    reported: str  # the metric in which the script reports what the hyperparameter set

    @property
    def workload(self) -> Path:
        return HERE / self.folder / "workload.yaml"

    @property
    def source(self) -> Path:
        return HERE / self.folder / self.data


CASES = [
    Case("iris_tree", "iris.csv", "max_leaf_nodes", 3, "leaves"),
    Case("forest_regressor", "diabetes.csv", "n-estimators", 7, "trees"),
    Case("opt_ml_paths", "diabetes.csv", "n_estimators", 6, "stages"),
    Case("pytorch_mlp", "diabetes.csv", "epochs", 4, "epochs_run"),
    Case("requirements_knn", "diabetes.csv", "n-neighbors", 3, "neighbors"),
]


def needs(case: Case) -> None:
    """Skip what this machine cannot run, saying why."""
    if case.folder == "pytorch_mlp":
        pytest.importorskip(
            "torch", reason="needs the gpu extra: pip install 'flywheel-mlops[gpu]'"
        )
    if case.folder == "opt_ml_paths" and not private_mounts_available():
        pytest.skip("hard-coded /opt/ml paths need a private mount namespace (unshare)")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.folder)
def test_script_runs_unchanged_through_flywheel_run_training(tmp_path: Path, case: Case) -> None:
    needs(case)
    workload = load_workload(case.workload)
    assert case.value not in (workload.hyperparameters[case.hyperparameter].default,)
    status = main(
        [
            "--home",
            str(tmp_path / "home"),
            "run",
            "training",
            "--workload",
            str(case.workload),
            "--source",
            str(case.source),
            "--hp",
            f"{case.hyperparameter}={case.value}",
            "--registry",
            str(tmp_path / "registry"),
            "--pipeline-root",
            str(tmp_path / "runs"),
        ]
    )
    assert status == 0
    (version,) = LocalModelRegistry(tmp_path / "registry").versions(workload.name)
    assert version.hyperparameters[case.hyperparameter] == case.value
    assert version.lineage["training"]["metrics"][case.reported] == case.value
    assert workload.objective_metric in version.metrics


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.folder)
def test_script_runs_unchanged_on_the_eks_path_on_the_cpu(tmp_path: Path, case: Case) -> None:
    needs(case)
    paths = {name: tmp_path / name for name in ("train", "test", "batches", "model.tar.gz")}
    prepare_data(
        source=str(case.source),
        workload_path=str(case.workload),
        batch_count=1,
        training_batches=1,
        test_fraction=0.2,
        seed=7,
        order_by="",
        train_path=paths["train"],
        test_path=paths["test"],
        batches_dir=paths["batches"],
    )
    trained = train_model(
        workload_path=str(case.workload),
        compute="eks-gpu",
        compute_config={"gpus": 0},
        hyperparameters={case.hyperparameter: str(case.value)},
        train_path=paths["train"],
        test_path=paths["test"],
        model_path=paths["model.tar.gz"],
        log=lambda _: None,
    )
    assert trained.training_metrics[case.reported] == case.value
