"""Model-quality metrics to CloudWatch, so alarms and the retraining operator can act on them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flywheel.components.errors import InvalidSpecError

MODEL_NAME_DIMENSION = "ModelName"
MODEL_VERSION_DIMENSION = "ModelVersion"


@dataclass(frozen=True)
class CloudWatchTarget:
    namespace: str
    region: str
    endpoint_url: str = ""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CloudWatchTarget | None:
        """None when publishing is off (an empty config); otherwise a checked target."""
        if not config:
            return None
        unknown = sorted(set(config) - {"namespace", "region", "endpoint_url"})
        if unknown:
            raise InvalidSpecError(
                f"cloudwatch.{unknown[0]}", "unknown; allowed: namespace, region, endpoint_url"
            )
        namespace = str(config.get("namespace", ""))
        if not namespace or namespace.startswith("AWS/") or len(namespace) > 255:
            raise InvalidSpecError(
                "cloudwatch.namespace", "required, 1-255 characters, not starting with 'AWS/'"
            )
        if not config.get("region"):
            raise InvalidSpecError("cloudwatch.region", "required, e.g. us-east-1")
        return cls(namespace, str(config["region"]), str(config.get("endpoint_url", "")))


def publish_model_metrics(
    client: Any,
    namespace: str,
    model_name: str,
    model_version: int,
    metrics: Mapping[str, float],
    timestamp: datetime,
) -> int:
    """One data point per metric, dimensioned by model name and version; returns how many."""
    dimensions = [
        {"Name": MODEL_NAME_DIMENSION, "Value": model_name},
        {"Name": MODEL_VERSION_DIMENSION, "Value": str(model_version)},
    ]
    data = [
        {
            "MetricName": name,
            "Dimensions": dimensions,
            "Timestamp": timestamp,
            "Value": float(value),
            "Unit": "None",
        }
        for name, value in sorted(metrics.items())
    ]
    client.put_metric_data(Namespace=namespace, MetricData=data)
    return len(data)
