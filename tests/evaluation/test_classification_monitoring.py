"""A classification champion monitored on its own metrics, end to end through kfp.local."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flywheel.components.errors import InvalidSpecError
from flywheel.pipelines.evaluation_run import (
    EvaluationRequest,
    evaluation_arguments,
    run_evaluation,
)
from flywheel.pipelines.requests import TrainingRequest
from flywheel.pipelines.training_run import run_training

pytestmark = pytest.mark.e2e
CHANNELS = Path(__file__).resolve().parents[1] / "channels"
# linear.py serves 'label,probability' lines, so every classification metric is produced.
WORKLOAD = """\
name: signs
task: classification
entry_point: linear.py
data: {id_column: id, feature_columns: [x1, x2], label_column: y}
hyperparameters:
  task: {type: str, default: classification}
objective: {metric: f1}
"""


@pytest.fixture(scope="module")
def signs(tmp_path_factory) -> TrainingRequest:
    """A registry whose champion classifies the sign of 2*x1 - x2 + 3, trained on batches 0-1."""
    root = tmp_path_factory.mktemp("signs")
    shutil.copy(CHANNELS / "linear.py", root / "linear.py")
    (root / "workload.yaml").write_text(WORKLOAD)
    rows = []
    for i in range(80):
        x1, x2 = (i * 7) % 11 - 5, (i * 3) % 13 - 6
        rows.append(f"{1000 + i},{x1},{x2},{'pos' if 2 * x1 - x2 + 3 > 0 else 'neg'}")
    (root / "table.csv").write_text("id,x1,x2,y\n" + "\n".join(rows) + "\n")
    request = TrainingRequest(
        workload=str(root / "workload.yaml"),
        source=str(root / "table.csv"),
        registry=str(root / "registry"),
        pipeline_root=str(root / "runs"),
        batch_count=4,
        training_batches=2,
    )
    run_training(request)
    return request


def test_classification_is_monitored_on_f1_through_the_evaluation_pipeline(
    signs: TrainingRequest, tmp_path: Path
) -> None:
    outcome = run_evaluation(
        EvaluationRequest(
            batch=3, threshold="f1 below 0.2", history=str(tmp_path / "history"), training=signs
        )
    )
    metrics = outcome.evaluation["metrics"]
    assert set(metrics) == {"accuracy", "f1", "roc_auc", "log_loss"}
    assert metrics["f1"] >= 0.2
    assert outcome.decision["retrain"] is False
    assert outcome.decision["reason"] == f"f1={metrics['f1']:.4f} holds (retrain when f1 below 0.2)"
    assert "monitor-performance" in outcome.run.tasks.started
    assert "finalize" in outcome.run.tasks.started and outcome.new_versions == []
    # The confusion matrix and ROC curve reach the KFP UI's ClassificationMetrics artifact.
    shown = json.loads((outcome.run.run_dir / "monitor-performance" / "classification").read_text())
    assert shown["confusionMatrix"]["annotationSpecs"] == [
        {"displayName": "neg"},
        {"displayName": "pos"},
    ]
    curve = shown["confidenceMetrics"]
    assert (curve[0]["recall"], curve[-1]["recall"]) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        ("rmse above 1", "a classification task produces no 'rmse'"),
        ("accuracy above 0.5", "accuracy is worse when lower: use 'accuracy below <number>'"),
    ],
)
def test_a_classification_threshold_the_task_cannot_breach_is_refused_before_the_run(
    signs: TrainingRequest, tmp_path: Path, threshold: str, message: str
) -> None:
    request = EvaluationRequest(
        batch=3, threshold=threshold, history=str(tmp_path / "history"), training=signs
    )
    with pytest.raises(InvalidSpecError, match=message):
        evaluation_arguments(request)
    assert not (tmp_path / "history").exists()
