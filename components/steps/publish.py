"""Publish an evaluation: record it in the history, then send it to CloudWatch when configured.

The history record is keyed by model version and batch bytes, so re-running the evaluation of
the same batch by the same version publishes no second data point.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flywheel.components.compute.aws import aws_client
from flywheel.components.monitoring.cloudwatch import CloudWatchTarget, publish_model_metrics
from flywheel.components.monitoring.history import EvaluationHistory, evaluation_key


@dataclass(frozen=True)
class Published:
    first_evaluation: bool
    data_points: int


def publish_evaluation(
    *,
    history_root: str,
    cloudwatch: Mapping[str, Any],
    model_name: str,
    model_version: int,
    batch: int,
    batch_sha256: str,
    metrics: Mapping[str, float],
    run_id: str,
) -> Published:
    target = CloudWatchTarget.from_config(cloudwatch)  # refuse a bad config before writing anything
    history = EvaluationHistory(history_root)
    key = evaluation_key(model_version, batch_sha256)
    first = history.append_once(
        model_name,
        "evaluation",
        key,
        {
            "model_version": model_version,
            "batch": batch,
            "metrics": dict(metrics),
            "run_id": run_id,
        },
    )
    already_sent = any(r["key"] == key for r in history.records(model_name, "published"))
    if target is None or already_sent:
        return Published(first, 0)
    client = aws_client("cloudwatch", target.region, target.endpoint_url)
    count = publish_model_metrics(
        client, target.namespace, model_name, model_version, metrics, datetime.now(UTC)
    )
    history.append(model_name, "published", key, {"namespace": target.namespace, "run_id": run_id})
    return Published(first, count)
