"""Each channel layout and each serving content type, end to end: prepare, train, evaluate.

The script (``linear.py``) asserts the layout it was told to expect, fits a line and is served
by SageMaker's default handlers; the data is exactly linear, so a correct round trip scores ~0.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flywheel.components.contract.workload import load_workload
from flywheel.components.errors import InvalidSpecError
from flywheel.components.steps.evaluate import evaluate_model

HERE = Path(__file__).parent
# The suite-wide ``train_on_split`` fixture (tests/conftest.py).
TrainOnSplit = Callable[..., Any]

WORKLOAD = """\
name: linear
task: {task}
entry_point: linear.py
data: {{id_column: id, feature_columns: [x1, x2], label_column: y}}
hyperparameters:
  file: {{type: str, default: "{file}"}}
  format: {{type: str, default: {format}}}
  header: {{type: str, default: "{header}"}}
  label: {{type: str, default: {label}}}
  task: {{type: str, default: {task}}}
metric_definitions:
  - {{name: features, regex: 'features=([0-9]+)'}}
objective: {{metric: {objective}}}
channels:
  train: {channel}
serving: {serving}
"""


def run(
    train_on_split: TrainOnSplit,
    tmp_path: Path,
    *,
    channel: str = "{}",
    serving: str = "{}",
    expect: dict | None = None,
    task: str = "regression",
    evaluate: bool = True,
) -> tuple[dict, dict]:
    """Prepare, train and evaluate; returns the training metrics and the evaluation metrics."""
    expect = {
        "file": "train.csv",
        "format": "csv",
        "header": "true",
        "label": "last",
        **(expect or {}),
    }
    folder = tmp_path / "workload"
    folder.mkdir()
    shutil.copy(HERE / "linear.py", folder / "linear.py")
    objective = "accuracy" if task == "classification" else "rmse"
    (folder / "workload.yaml").write_text(
        WORKLOAD.format(task=task, objective=objective, channel=channel, serving=serving, **expect)
    )
    source = tmp_path / "table.csv"
    rows = []
    for i in range(40):
        x1, x2 = (i * 7) % 11 - 5, (i * 3) % 13 - 6
        value = 2 * x1 - x2 + 3
        label = ("pos" if value > 0 else "neg") if task == "classification" else value
        rows.append(f"{1000 + i},{x1},{x2},{label}")
    source.write_text("id,x1,x2,y\n" + "\n".join(rows) + "\n")
    workload = str(folder / "workload.yaml")
    trained = train_on_split(workload, source, test_fraction=0.25, seed=3)
    if not evaluate:
        return trained.metrics, {}
    evaluated = evaluate_model(
        workload_path=workload,
        compute="local",
        model_path=trained.model,
        test_path=trained.test,
        log=lambda _: None,
    )
    return trained.metrics, evaluated.metrics


@pytest.mark.parametrize(
    ("channel", "expect"),
    [
        ("{}", {}),
        (
            "{file: data.csv, header: false, label: first}",
            {"file": "data.csv", "header": "false", "label": "first"},
        ),
        ("{format: jsonl}", {"file": "train.jsonl", "format": "jsonl"}),
        (
            "{format: parquet, label: first}",
            {"file": "train.parquet", "format": "parquet", "label": "first"},
        ),
        (
            "{format: npy, label: first}",
            {"file": "train.npy", "format": "npy", "header": "false", "label": "first"},
        ),
    ],
)
def test_each_channel_layout_reaches_the_script_and_the_model_evaluates(
    train_on_split: TrainOnSplit, tmp_path: Path, channel: str, expect: dict
) -> None:
    training, evaluation = run(train_on_split, tmp_path, channel=channel, expect=expect)
    assert training == {"features": 2.0}, "the id column must stay out of training input"
    assert evaluation["rmse"] < 1e-6


def test_the_id_column_goes_in_only_when_listed(
    train_on_split: TrainOnSplit, tmp_path: Path
) -> None:
    training, _ = run(train_on_split, tmp_path, channel="{columns: [id, x1, x2]}", evaluate=False)
    assert training == {"features": 3.0}


@pytest.mark.parametrize(
    "serving",
    [
        "{content_type: text/csv, accept: text/csv}",
        "{content_type: application/json, accept: application/json}",
        "{content_type: application/x-npy, accept: application/x-npy}",
        "{content_type: application/json, accept: text/csv}",
        "{content_type: application/jsonlines, accept: application/jsonlines}",
        "{content_type: application/jsonlines, accept: text/csv}",
        "{content_type: text/csv, accept: text/csv, split_type: Line, batch_strategy: SingleRecord}",
        "{content_type: application/json, accept: application/json, split_type: Line, "
        "batch_strategy: SingleRecord}",
        "{content_type: text/csv, accept: application/json, split_type: Line}",
        "{content_type: application/jsonlines, accept: application/jsonlines, split_type: Line}",
    ],
)
def test_each_content_type_is_decoded_and_encoded_by_sagemakers_defaults(
    train_on_split: TrainOnSplit, tmp_path: Path, serving: str
) -> None:
    _, evaluation = run(train_on_split, tmp_path, serving=serving)
    assert evaluation["rmse"] < 1e-6


@pytest.mark.parametrize(
    "serving",
    [
        "{content_type: application/jsonlines, accept: application/jsonlines}",
        "{content_type: application/json, accept: application/json, "
        "split_type: Line, batch_strategy: SingleRecord}",
    ],
    ids=["json-lines", "json-single-record"],
)
def test_classification_answers_label_and_probability_per_row(
    train_on_split: TrainOnSplit, tmp_path: Path, serving: str
) -> None:
    _, evaluation = run(train_on_split, tmp_path, task="classification", serving=serving)
    assert evaluation["accuracy"] >= 0.7 and evaluation["roc_auc"] >= 0.9


def test_classification_is_judged_by_its_own_metrics(
    train_on_split: TrainOnSplit, tmp_path: Path
) -> None:
    _, evaluation = run(train_on_split, tmp_path, task="classification")
    assert set(evaluation) == {"accuracy", "f1", "roc_auc", "log_loss"}
    # A least-squares line on separable classes: right on most rows, not necessarily on all.
    assert evaluation["accuracy"] >= 0.7 and evaluation["roc_auc"] >= 0.9


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ("{formt: csv}", r"channels.train.formt: unknown key; did you mean format\?"),
        ("{format: xml}", r"channels.train.format: 'xml' is not one of"),
        ("{format: npy, header: true}", r"channels.train.header: a .npy matrix has no header"),
        ("{label: middle}", r"channels.train.label: 'middle' is not one of"),
        ("{columns: [y]}", r"channels.train.columns: 'y' is not one of \['id', 'x1', 'x2'\]"),
    ],
)
def test_bad_channel_settings_are_refused_when_the_workload_loads(
    tmp_path: Path, channel: str, message: str
) -> None:
    (tmp_path / "linear.py").write_text("")
    (tmp_path / "workload.yaml").write_text(
        WORKLOAD.format(
            task="regression",
            objective="rmse",
            channel=channel,
            serving="{}",
            file="f",
            format="csv",
            header="true",
            label="last",
        )
    )
    with pytest.raises(InvalidSpecError, match=message):
        load_workload(tmp_path / "workload.yaml")
