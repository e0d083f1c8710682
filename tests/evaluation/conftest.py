"""Fixtures for the evaluation loop: a trained champion and a moto server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.pipelines.training_run import TrainingRequest, run_training

REPO = Path(__file__).resolve().parents[2]
QSAR_WORKLOAD = REPO / "examples" / "qsar" / "workload.yaml"
FAST = {"n_estimators": "25", "n_bits": "1024"}


def training_request(root: Path, workload: Path = QSAR_WORKLOAD) -> TrainingRequest:
    return TrainingRequest(
        workload=str(workload),
        hyperparameters=FAST,
        registry=str(root / "registry"),
        pipeline_root=str(root / "runs"),
    )


@pytest.fixture(scope="module")
def champion_root(tmp_path_factory) -> Path:
    """A registry whose champion was trained on batches 0-2 of the ChEMBL example."""
    root = tmp_path_factory.mktemp("flywheel")
    run_training(training_request(root))
    return root


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
