"""``plan_training`` says which shape the training pipeline takes, from the workload at run time."""

# No ``from __future__ import annotations``: KFP reads the components' annotations as types.
from pathlib import Path

import pytest
from kfp import local

from flywheel.components import plan_training
from flywheel.components.steps.training_plan import TRAINING_ONLY

BASE = """\
name: toy
entry_point: train.py
data: {id_column: id, feature_columns: [x], label_column: y}
"""
EVALUATION = """\
evaluation:
  entry_point: evaluate.py
  metrics: {mse: regression_metrics.mse.value}
objective: {metric: mse, goal: minimize}
"""


def _workload(tmp_path: Path, text: str) -> str:
    for script in ("train.py", "evaluate.py"):
        (tmp_path / script).write_text("print()\n")
    (tmp_path / "workload.yaml").write_text(text)
    return str(tmp_path / "workload.yaml")


@pytest.fixture
def local_runner(tmp_path: Path) -> None:
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "root"),
        enable_caching=False,
    )


@pytest.mark.parametrize(
    ("text", "scored"),
    [
        (BASE + "objective: {metric: rmse}\n", True),
        (BASE + "serving: false\n", False),
        (BASE + "serving: false\n" + EVALUATION, True),  # the script scores: runs as before
    ],
    ids=["serving", "training-only", "serving-false-with-evaluation-script"],
)
def test_the_plan_scores_unless_nothing_can(
    tmp_path: Path, local_runner, capfd, text: str, scored: bool
) -> None:
    task = plan_training(workload=_workload(tmp_path, text), code_fingerprint="")
    assert task.output is scored
    assert (TRAINING_ONLY in capfd.readouterr().out) is not scored
