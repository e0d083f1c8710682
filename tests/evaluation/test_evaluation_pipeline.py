"""The evaluation loop end to end through kfp.local, on the replayed ChEMBL batches."""

from __future__ import annotations

import io
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from rich.console import Console

from flywheel.components.monitoring.history import EvaluationHistory
from flywheel.components.registry import LocalModelRegistry
from flywheel.pipelines.demo import outcome_line as demo_line
from flywheel.pipelines.evaluation_run import EvaluationRequest, evaluation_table, run_evaluation
from flywheel.pipelines.local_runner import PipelineFailed
from flywheel.pipelines.training_run import run_training

from .conftest import training_request

pytestmark = pytest.mark.e2e
MODEL = "qsar-pic50"


def test_batch_over_the_threshold_finalizes_without_retraining(champion_root: Path) -> None:
    outcome = run_evaluation(
        EvaluationRequest(
            batch=3,
            threshold="rmse above 1.0",
            history=str(champion_root / "history-holds"),
            training=training_request(champion_root),
        )
    )
    assert outcome.new_versions == [] and outcome.champion_after == outcome.champion_before == 1
    assert outcome.evaluation["metrics"]["rmse"] < 1.0
    assert (
        "finalize" in outcome.run.tasks.started and "train-model" not in outcome.run.tasks.started
    )
    assert outcome.decision["retrain"] is False


def _sample_count_and_average(client, dimensions, since: datetime) -> tuple[float, float]:
    def stat(name: str) -> list[float]:
        return client.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "rmse",
                    "ReturnData": True,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "Flywheel/Test",
                            "MetricName": "rmse",
                            "Dimensions": dimensions,
                        },
                        "Period": 60,
                        "Stat": name,
                    },
                }
            ],
            StartTime=since - timedelta(minutes=5),
            EndTime=datetime.now(UTC) + timedelta(minutes=5),
        )["MetricDataResults"][0]["Values"]

    return sum(stat("SampleCount")), stat("Average")[0]


def _copy_champion(champion_root: Path, name: str) -> Path:
    root = champion_root / name
    shutil.copytree(champion_root / "registry", root / "registry")
    return root


def test_breach_retrains_on_accumulated_data_and_promotes_a_new_champion(
    champion_root: Path,
) -> None:
    root = _copy_champion(champion_root, "breach")
    outcome = run_evaluation(
        EvaluationRequest(
            batch=5,
            threshold="rmse above 0.8",
            history=str(root / "history"),
            training=training_request(root),
        )
    )
    assert outcome.evaluation["metrics"]["rmse"] > 0.8 and outcome.decision["retrain"] is True
    assert outcome.new_versions == [2] and outcome.champion_after == 2
    registry = LocalModelRegistry(root / "registry")
    assert registry.champion_history(MODEL)[-1]["version"] == 2
    retrained = registry.get(MODEL, 2)
    assert (
        retrained.lineage["data"]["train"]["rows"]
        > registry.get(MODEL, 1).lineage["data"]["train"]["rows"]
    )
    # What the report needs: the batches it was trained on, and the old champion on its rows.
    assert retrained.lineage["data"]["training_batches"] == 6
    compared = retrained.lineage["compared_with"]
    assert compared["version"] == 1 and compared["metrics"]["rmse"] > retrained.metrics["rmse"]
    assert not outcome.in_sample


def test_scoring_a_batch_the_champion_was_trained_on_says_in_sample(champion_root: Path) -> None:
    outcome = run_evaluation(
        EvaluationRequest(
            batch=1,
            threshold="rmse above 1.0",
            history=str(champion_root / "history-in-sample"),
            training=training_request(champion_root),
        )
    )
    assert outcome.in_sample and outcome.decision["retrain"] is False
    shown = io.StringIO()
    Console(file=shown, width=120).print(evaluation_table(outcome))
    assert "in-sample" in shown.getvalue()
    assert "(in-sample) -> " in demo_line(outcome)


def test_reevaluating_a_breach_publishes_once_and_retrains_once(
    champion_root: Path, moto_server: str
) -> None:
    root = _copy_champion(champion_root, "idempotent")
    request = EvaluationRequest(
        batch=5,
        threshold="rmse above 0.8",
        history=str(root / "history"),
        cloudwatch={
            "namespace": "Flywheel/Test",
            "region": "us-east-1",
            "endpoint_url": moto_server,
        },
        # A margin no candidate can clear keeps version 1 champion, so the breach stays the same.
        training=replace(training_request(root), margin=10.0),
    )
    started = datetime.now(UTC)
    first = run_evaluation(request)
    assert (
        first.decision["retrain"] is True
        and first.new_versions == [2]
        and first.champion_after == 1
    )
    again = run_evaluation(request)
    assert again.decision["retrain"] is False and "already retrained" in again.decision["reason"]
    assert again.new_versions == []
    history = EvaluationHistory(root / "history")
    assert (
        len(history.records(MODEL, "evaluation")) == 1
        and len(history.records(MODEL, "retrain")) == 1
    )

    client = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=moto_server)
    (metric,) = client.list_metrics(Namespace="Flywheel/Test", MetricName="rmse")["Metrics"]
    assert metric["Dimensions"] == [
        {"Name": "ModelName", "Value": MODEL},
        {"Name": "ModelVersion", "Value": "1"},
    ]
    count, average = _sample_count_and_average(client, metric["Dimensions"], started)
    assert count == 1
    assert average == pytest.approx(first.evaluation["metrics"]["rmse"])


def test_failing_transform_runs_the_exit_handler_and_records_the_failure(tmp_path: Path) -> None:
    workload = tmp_path / "workload"
    shutil.copytree(Path(training_request(tmp_path).workload).parent, workload)
    run_training(training_request(tmp_path, workload / "workload.yaml"))
    script = workload / "train.py"
    script.write_text(
        script.read_text().replace(
            "    model, settings = model_and_settings\n",
            "    model, settings = model_and_settings\n    raise MemoryError('scoring node ran out of memory')\n",
        )
    )
    request = EvaluationRequest(
        batch=3,
        history=str(tmp_path / "history"),
        training=training_request(tmp_path, workload / "workload.yaml"),
    )
    with pytest.raises(
        PipelineFailed, match=r"score-shard failed: .*MemoryError: scoring node ran out of memory"
    ):
        run_evaluation(request)
    (outcome,) = EvaluationHistory(tmp_path / "history").records(MODEL, "outcome")
    assert outcome["state"] == "FAILED"
    assert "MemoryError: scoring node ran out of memory" in outcome["error"]
    summaries = list((tmp_path / "runs").glob("flywheel-evaluation-*/record-outcome/summary"))
    assert summaries and "failed: score-shard failed" in summaries[0].read_text()
