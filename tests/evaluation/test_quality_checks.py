"""What the evaluation refuses before scoring, and the pure parts of monitoring."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from flywheel.components.errors import InvalidSpecError
from flywheel.components.monitoring.notify import NotifyTarget, notify
from flywheel.components.monitoring.scores import classification_metrics
from flywheel.components.monitoring.thresholds import classification_report, parse_threshold
from flywheel.components.steps.batch import prepare_batch
from flywheel.pipelines.cli import main

from .conftest import QSAR_WORKLOAD

CLASSIFICATION_WORKLOAD = """\
name: signs
task: classification
entry_point: linear.py
data: {id_column: id, feature_columns: [x1, x2], label_column: y}
objective: {metric: f1}
"""


def _prepare(tmp_path: Path, content: str, **overrides) -> None:
    source = tmp_path / "batch.csv"
    source.write_text(content)
    arguments = {
        "source": str(source),
        "workload_path": str(QSAR_WORKLOAD),
        "batch": 0,
        "batch_count": 1,
        "order_by": "",
        "threshold": "rmse above 0.9",
        "champion_columns": ["smiles"],
        "champion_metrics": ["rmse", "mae", "r2"],
        "batch_path": tmp_path / "out.csv",
    }
    prepare_batch(**{**arguments, **overrides})


@pytest.mark.parametrize(
    ("content", "overrides", "message"),
    [
        (
            "compound_id,smiles,pIC50\n1,CCO,5\n",
            {"threshold": "auc below 0.7"},
            "a regression task produces no 'auc'; it produces rmse, mae, r2",
        ),
        (
            "compound_id,smiles,pIC50\n1,CCO,5\n",
            {"threshold": "rmse above high"},
            "'high' is not a number",
        ),
        (
            "compound_id,formula,pIC50\n1,C2H6O,5\n",
            {},
            "columns do not match the model's input: missing smiles; batch has compound_id, formula, pIC50",
        ),
        ("compound_id,smiles,pIC50\n", {}, "is empty: nothing to score"),
        ("compound_id,smiles\n1,CCO\n", {}, "ground truth lacks the label column 'pIC50'"),
        (
            "compound_id,smiles,pIC50\n1,CCO,5\n2,CCN,\n",
            {},
            "1 row(s) have no pIC50 label, e.g. id 2",
        ),
        ("compound_id,smiles,pIC50\n1,CCO,5\n", {"batch": 3}, "batch: must be between 0 and 0"),
    ],
)
def test_unscorable_batches_are_refused_before_scoring(
    tmp_path: Path, content, overrides, message
) -> None:
    with pytest.raises(InvalidSpecError) as refused:
        _prepare(tmp_path, content, **overrides)
    assert message in str(refused.value)
    assert not (tmp_path / "out.csv").exists()


CLASSES = "id,x1,x2,y\n1,0,1,pos\n2,1,0,neg\n"


@pytest.mark.parametrize(
    ("content", "threshold", "champion_metrics", "message"),
    [
        (
            CLASSES,
            "roc_auc below 0.8",
            ["accuracy", "f1"],
            "roc_auc needs the probability of the positive label on each prediction line "
            "('label,probability') and two classes; the champion's predictions give accuracy, f1",
        ),
        (
            "id,x1,x2,y\n1,0,1,pos\n2,1,0,pos\n",
            "log_loss above 0.5",
            ["accuracy", "f1", "roc_auc", "log_loss"],
            "threshold: log_loss needs two classes in the batch; batch 0 has pos",
        ),
        (
            CLASSES,
            "error_rate above 0.2",
            ["accuracy", "f1"],
            "a classification task produces no 'error_rate'; it produces accuracy, f1, roc_auc, log_loss",
        ),
    ],
)
def test_classification_thresholds_the_champion_cannot_produce_are_refused_before_scoring(
    tmp_path: Path, content: str, threshold: str, champion_metrics: list[str], message: str
) -> None:
    (tmp_path / "linear.py").write_text("")
    (tmp_path / "workload.yaml").write_text(CLASSIFICATION_WORKLOAD)
    with pytest.raises(InvalidSpecError) as refused:
        _prepare(
            tmp_path,
            content,
            workload_path=str(tmp_path / "workload.yaml"),
            threshold=threshold,
            champion_columns=["x1", "x2"],
            champion_metrics=champion_metrics,
        )
    assert message in str(refused.value) and len(str(refused.value).splitlines()) == 1
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    ("threshold", "breached", "holds"),
    [
        ("accuracy below 0.8", {"accuracy": 0.7}, {"accuracy": 0.9}),
        ("f1 below 0.6", {"f1": 0.5}, {"f1": 0.7}),
        ("roc_auc below 0.7", {"roc_auc": 0.6}, {"roc_auc": 0.8}),
        ("log_loss above 0.4", {"log_loss": 0.5}, {"log_loss": 0.3}),
    ],
)
def test_classification_monitors_what_the_evaluate_step_computes(
    threshold: str, breached: dict, holds: dict
) -> None:
    rule = parse_threshold(threshold, "classification")
    assert rule.breached_by(breached) and not rule.breached_by(holds)


@pytest.mark.parametrize(
    ("threshold", "task", "message"),
    [
        (
            "f1 above 0.9",
            "classification",
            "threshold: f1 is worse when lower: use 'f1 below <number>'",
        ),
        (
            "log_loss below 0.1",
            "classification",
            "log_loss is worse when higher: use 'log_loss above",
        ),
        ("r2 above 0.9", "regression", "r2 is worse when lower: use 'r2 below <number>'"),
    ],
)
def test_a_threshold_on_the_better_side_of_its_metric_is_refused(
    threshold: str, task: str, message: str
) -> None:
    with pytest.raises(InvalidSpecError, match=message):
        parse_threshold(threshold, task)


def test_threshold_reads_like_a_sentence() -> None:
    rule = parse_threshold("r2 below 0.6", "regression")
    assert rule.breached_by({"r2": 0.5}) and not rule.breached_by({"r2": 0.7})
    assert parse_threshold("rmse above 0.9", "regression").breached_by({"rmse": 1.0})
    with pytest.raises(InvalidSpecError, match="is not '<metric> above\\|below <number>'"):
        parse_threshold("rmse > 0.9", "regression")


def test_classification_report_has_the_evaluate_metrics_confusion_matrix_and_roc() -> None:
    report = classification_report(
        ["active", "active", "inactive", "inactive"],
        ["active", "inactive", "inactive", "inactive"],
        scores=[0.2, 0.4, 0.7, 0.9],  # probability of "inactive", the second label
    )
    assert report.labels == ["active", "inactive"]
    assert report.confusion == [[1, 1], [0, 2]]
    assert report.metrics == classification_metrics(
        ["active", "active", "inactive", "inactive"],
        ["active", "inactive", "inactive", "inactive"],
        [0.2, 0.4, 0.7, 0.9],
    )
    assert report.metrics["accuracy"] == 0.75 and report.metrics["roc_auc"] == 1.0
    fpr, tpr, _ = report.roc
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert tpr[2] == 1.0 and fpr[2] == 0.0  # a perfect ranking reaches (0, 1)


def test_outcome_reaches_a_slack_compatible_webhook_and_sns(
    moto_server: str, chat_webhook: tuple[str, list[dict]]
) -> None:
    url, received = chat_webhook
    sns = boto3.client("sns", region_name="us-east-1", endpoint_url=moto_server)
    topic = sns.create_topic(Name="flywheel-runs")["TopicArn"]
    target = NotifyTarget.from_config(
        {
            "webhook_url": url,
            "sns_topic_arn": topic,
            "region": "us-east-1",
            "endpoint_url": moto_server,
        }
    )
    sent = notify(target, "Flywheel: qsar evaluation failed", "- failed: score-shard failed")
    assert sent == [topic, target.webhook_url]
    assert received == [
        {"text": "*Flywheel: qsar evaluation failed*\n- failed: score-shard failed"}
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--batch", "3", "--threshold", "accuracy below 0.8"],
            "a regression task produces no 'accuracy'",
        ),
        (["--batch", "9"], "--batch: must be between 0 and 7"),
        (
            ["--batch", "3", "--webhook-url", "ftp://x"],
            "notify.webhook_url: 'ftp://x' is not an http(s) URL",
        ),
        (
            ["--batch", "3", "--cloudwatch-namespace", "AWS/SageMaker", "--region", "us-east-1"],
            "cloudwatch.namespace: required, 1-255 characters, not starting with 'AWS/'",
        ),
        (["--batch", "3"], "--registry: model qsar-pic50 has no champion in "),
    ],
)
def test_evaluation_command_refuses_bad_input_in_one_line(
    tmp_path: Path, capsys, arguments, message
) -> None:
    status = main(
        [
            "run",
            "evaluation",
            "--registry",
            str(tmp_path / "registry"),
            "--history",
            str(tmp_path / "history"),
            "--pipeline-root",
            str(tmp_path / "runs"),
            *arguments,
        ]
    )
    error = capsys.readouterr().err.strip()
    assert status == 2 and len(error.splitlines()) == 1 and message in error
    assert not (tmp_path / "history").exists() and not (tmp_path / "runs").exists()
