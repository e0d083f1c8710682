"""The PyTorch example end to end: the EKS GPU pipeline through kfp.local, on this machine's CPU."""

from __future__ import annotations

import math
import sys
import tarfile
from pathlib import Path

import pytest

from flywheel.components.compute.eks import EksGpuBackend, Placement
from flywheel.components.contract.workload import load_workload
from flywheel.components.data import batches as data
from flywheel.components.data import tables
from flywheel.pipelines.training_run import TrainingRequest, run_training

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[2]
TORCH_WORKLOAD = REPO / "examples" / "qsar" / "workload-torch.yaml"
FAST = {"epochs": "4", "hidden_units": "64", "n_bits": "1024"}


@pytest.mark.e2e
def test_eks_gpu_pipeline_trains_evaluates_and_registers_the_torch_model(tmp_path: Path) -> None:
    outcome = run_training(
        TrainingRequest(
            workload=str(TORCH_WORKLOAD),
            compute="eks-gpu",
            hyperparameters=FAST,
            registry=str(tmp_path / "registry"),
            pipeline_root=str(tmp_path / "runs"),
        )
    )
    version = outcome.version
    assert version.name == "qsar-pic50-torch" and outcome.promoted
    assert 0 < version.metrics["rmse"] < 1.5 and math.isfinite(version.metrics["r2"])
    training = version.lineage["training"]
    assert training["compute"] == "eks-gpu"
    assert {"train_rmse", "test_rmse", "train_seconds"} <= set(training["metrics"])
    assert version.hyperparameters["hidden_units"] == 64
    with tarfile.open(version.model_uri) as archive:
        assert {"model.pt", "settings.json"} <= set(archive.getnames())


def test_torch_example_trains_data_parallel_under_torchrun(tmp_path: Path) -> None:
    workload = load_workload(TORCH_WORKLOAD)
    table = tables.open_table("builtin:chembl-CHEMBL2321810").read().slice(0, 300)
    train, test = data.split_train_test(table, 0.2, seed=7)
    tables.write_csv(tmp_path / "train" / "train.csv", train)
    tables.write_csv(tmp_path / "test" / "test.csv", test)
    lines: list[str] = []
    result = EksGpuBackend(Placement(gpus=2), python=sys.executable).train(
        workload.training_job(
            job_name="qsar-torch-ddp",
            channels={"train": str(tmp_path / "train"), "test": str(tmp_path / "test")},
            hyperparameters=workload.resolve_hyperparameters(FAST),
            output_location=str(tmp_path / "out"),
        ),
        log=lines.append,
    )
    assert any("2 process(es)" in line for line in lines)
    # Rank 0 alone reports: one line per epoch, not one per process.
    assert sum(line.startswith("epoch=") for line in lines) == int(FAST["epochs"])
    assert math.isfinite(result.metrics["test_rmse"])
    with tarfile.open(result.model_artifact) as archive:
        assert {"model.pt", "settings.json"} <= set(archive.getnames())
