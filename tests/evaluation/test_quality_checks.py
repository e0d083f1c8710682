"""What the evaluation refuses before scoring, and the pure parts of monitoring."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import boto3
import pytest

from flywheel.components.errors import InvalidSpecError
from flywheel.components.monitoring import classification_report, parse_threshold
from flywheel.components.notify import NotifyTarget, notify
from flywheel.components.steps.batch import prepare_batch
from flywheel.pipelines.cli import main

from .conftest import QSAR_WORKLOAD


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


def test_threshold_reads_like_a_sentence() -> None:
    rule = parse_threshold("r2 below 0.6", "regression")
    assert rule.breached_by({"r2": 0.5}) and not rule.breached_by({"r2": 0.7})
    assert parse_threshold("rmse above 0.9", "regression").breached_by({"rmse": 1.0})
    with pytest.raises(InvalidSpecError, match="is not '<metric> above\\|below <number>'"):
        parse_threshold("rmse > 0.9", "regression")


def test_classification_report_has_confusion_matrix_and_roc() -> None:
    report = classification_report(
        ["active", "active", "inactive", "inactive"],
        ["active", "inactive", "inactive", "inactive"],
        scores=[0.2, 0.4, 0.7, 0.9],  # probability of "inactive", the second label
    )
    assert report.labels == ["active", "inactive"]
    assert report.confusion == [[1, 1], [0, 2]]
    assert report.metrics["accuracy"] == 0.75
    fpr, tpr, _ = report.roc
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert tpr[2] == 1.0 and fpr[2] == 0.0  # a perfect ranking reaches (0, 1)


def test_outcome_reaches_a_slack_compatible_webhook_and_sns(moto_endpoint: str) -> None:
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    sns = boto3.client("sns", region_name="us-east-1", endpoint_url=moto_endpoint)
    topic = sns.create_topic(Name="flywheel-runs")["TopicArn"]
    target = NotifyTarget.from_config(
        {
            "webhook_url": f"http://127.0.0.1:{server.server_port}/hook",
            "sns_topic_arn": topic,
            "region": "us-east-1",
            "endpoint_url": moto_endpoint,
        }
    )
    sent = notify(target, "Flywheel: qsar evaluation failed", "- failed: score-shard failed")
    thread.join(timeout=10)
    server.server_close()
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
