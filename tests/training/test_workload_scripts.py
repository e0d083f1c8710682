"""A workload's own processing scripts: ``preprocessing`` and ``evaluation`` sections, checked."""

from pathlib import Path

import pytest

from flywheel.components.contract.workload import load_workload
from flywheel.components.errors import InvalidSpecError

BASE = """\
name: toy
entry_point: train.py
data: {id_column: id, feature_columns: [x], label_column: y}
"""
WITH_SCRIPTS = (
    BASE
    + """\
preprocessing: {entry_point: prep.py, arguments: [--scale, 2]}
evaluation:
  entry_point: evaluate.py
  metrics: {mse: regression_metrics.mse.value}
objective: {metric: mse, goal: minimize}
"""
)


def _workload(tmp_path: Path, text: str) -> Path:
    for script in ("train.py", "prep.py", "evaluate.py"):
        (tmp_path / script).write_text("print()\n")
    (tmp_path / "workload.yaml").write_text(text)
    return tmp_path / "workload.yaml"


def test_scripts_default_to_sagemaker_pipelines_paths(tmp_path: Path) -> None:
    workload = load_workload(_workload(tmp_path, WITH_SCRIPTS))
    assert workload.preprocessing is not None and workload.evaluation is not None
    assert workload.preprocessing.arguments == ("--scale", "2")
    assert workload.preprocessing.paths == {
        "input": "/opt/ml/processing/input/data",
        "output": "/opt/ml/processing/output/data",
    }
    assert workload.evaluation.paths == {
        "model": "/opt/ml/processing/model",
        "test": "/opt/ml/processing/test",
        "output": "/opt/ml/processing/evaluation",
    }
    assert workload.evaluation.source_dir == tmp_path.resolve()
    assert (workload.objective_metric, workload.objective_goal) == ("mse", "minimize")


def test_without_scripts_nothing_changes(tmp_path: Path) -> None:
    workload = load_workload(_workload(tmp_path, BASE + "objective: {metric: rmse}\n"))
    assert workload.preprocessing is None and workload.evaluation is None


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "entry_point: prep.py",
            "entry_point: nope.py",
            "preprocessing.entry_point: nope.py is not a file in",
        ),
        (
            "arguments:",
            "argumnets:",
            "preprocessing.argumnets: unknown key; did you mean arguments?",
        ),
        (
            "{metric: mse,",
            "{metric: rmse,",
            "objective.metric: 'rmse' is not one of the evaluation script's metrics ['mse']",
        ),
        (
            ", goal: minimize}",
            "}",
            "objective.goal: None is not one of ['minimize', 'maximize'] (required with evaluation)",
        ),
        (
            "metrics: {mse: regression_metrics.mse.value}",
            "report: evaluation.json",
            "evaluation.metrics: required: metric name to a JSON path",
        ),
        (
            "entry_point: evaluate.py",
            "entry_point: evaluate.py\n  model: /tmp/model",
            "evaluation.model: /tmp/model is not a folder under /opt/ml/processing",
        ),
        (
            "arguments: [--scale, 2]}",
            "instance_count: 0}",
            "preprocessing.instance_count: must be a whole number >= 1, got 0",
        ),
    ],
)
def test_bad_script_sections_are_refused_naming_the_field(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert old in WITH_SCRIPTS
    with pytest.raises(InvalidSpecError) as refused:
        load_workload(_workload(tmp_path, WITH_SCRIPTS.replace(old, new, 1)))
    assert str(refused.value).startswith(message)
