"""The serving half of ``python -m flywheel.operators --dev``: a registered model to deploy, soak
alarms, and a KFP stand-in that runs the flywheel-deployment pipeline's task on moto.

Dev only: nothing here runs in a cluster. The model versions are registered through the
``sagemaker://`` registry, as a training run registers them (PendingManualApproval), so approving
one is what it is in AWS: ``UpdateModelPackage`` with ``ModelApprovalStatus=Approved``.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import boto3

MODEL = "churn-model"
BUCKET = "flywheel-artifacts"
REGION = "us-east-1"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
# The sample's soak alarms, created OK (the sample's rollback alarms need not exist to create).
SOAK_ALARMS = ("churn-model-staging-5xx",)
DEPLOY_PIPELINE = "flywheel-deployment"


def registry_uri(endpoint_url: str) -> str:
    return (
        f"sagemaker://{REGION}/{BUCKET}/flywheel/registry?image={IMAGE}&endpoint_url={endpoint_url}"
    )


def _archive(body: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.txt")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def seed(endpoint_url: str, versions: int = 2) -> None:
    """Register ``versions`` versions of the sample's model and create its soak alarms, OK."""
    from flywheel.components.registry import open_registry

    boto3.client("s3", region_name=REGION, endpoint_url=endpoint_url).create_bucket(Bucket=BUCKET)
    registry = open_registry(registry_uri(endpoint_url))
    with tempfile.TemporaryDirectory(prefix="flywheel-models-") as folder:
        for i in range(1, versions + 1):
            path = Path(folder) / f"model-{i}.tar.gz"
            path.write_bytes(_archive(f"dev model {i}\n".encode()))
            registry.register(
                MODEL,
                str(path),
                metrics={"auc": 0.8 + i / 100},
                hyperparameters={},
                lineage={"source": "flywheel.operators --dev"},
            )
    cloudwatch = boto3.client("cloudwatch", region_name=REGION, endpoint_url=endpoint_url)
    for alarm in SOAK_ALARMS:
        put_quiet_alarm(cloudwatch, alarm, "dev: quiet")


def put_quiet_alarm(cloudwatch: Any, name: str, reason: str) -> None:
    """An endpoint's 5xx alarm (any 5xx in a minute), set to OK: a soak that can pass."""
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason=reason)


def run_deploy_task(_run_name: str, parameters: dict[str, Any]) -> str | None:
    """The flywheel-deployment pipeline's one task, as KFP would run it: ``deploy_endpoint``'s
    code. Other pipelines' runs are left to the stand-in's timer (``None``)."""
    if "model_package_arn" not in parameters:
        return None
    from flywheel.components.compute.sagemaker import AwsClients, SageMakerConfig
    from flywheel.components.compute.sagemaker.endpoint import deploy_model_package

    config = SageMakerConfig.from_mapping(parameters["compute_config"])
    deploy_model_package(
        AwsClients.connect(config.region, config.endpoint_url),
        config,
        parameters["model_package_arn"],
        endpoint_name=parameters["endpoint_name"],
        instance_type=parameters["instance_type"],
        instance_count=int(parameters["instance_count"]),
        rollback_alarms=tuple(parameters["rollback_alarms"]),
        traffic_routing=parameters["traffic_routing"],
    )
    return "SUCCEEDED"
