"""A SageMaker training job for a :class:`TrainingJobSpec`, under the training-script contract.

SageMaker's framework containers run ``entry_point`` from ``source_dir`` when it is uploaded as
``sourcedir.tar.gz`` and named by the ``sagemaker_program`` and ``sagemaker_submit_directory``
hyperparameters; channels appear under ``/opt/ml/input/data/<channel>``. That is the contract the
local backend imitates, so the user's script runs here unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flywheel.components.compute.backend import TrainingJobSpec
from flywheel.components.compute.sagemaker import naming
from flywheel.components.compute.sagemaker.s3 import S3Uri
from flywheel.components.compute.sagemaker.specs import SageMakerConfig, check_hyperparameters
from flywheel.components.compute.sagemaker.validation import check_request, check_value
from flywheel.components.contract.training import sdk_hyperparameters, validate_channel_name
from flywheel.components.errors import InvalidSpecError

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
# With network isolation the container cannot fetch its code from S3; as the SageMaker SDK does,
# the code arrives through an input channel of this name, at this path.
CODE_CHANNEL = "code"
CODE_CHANNEL_ARCHIVE = f"/opt/ml/input/data/{CODE_CHANNEL}/sourcedir.tar.gz"


def contract_hyperparameters(
    hyperparameters: Mapping[str, object],
    entry_point: str,
    code: str,
    region: str,
    distributed: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The user's hyperparameters as strings, plus what the framework container needs to find the script.

    The same ``hyperparameters.json`` the local and EKS backends write (:func:`sdk_hyperparameters`).
    """
    for name, value in hyperparameters.items():
        try:
            json.dumps(value)
        except TypeError:
            raise InvalidSpecError(
                f"hyperparameters.{name}", f"{value!r} cannot be turned into a string"
            ) from None
    return check_hyperparameters(
        {
            **sdk_hyperparameters(
                hyperparameters, entry_point=entry_point, submit_directory=str(code), region=region
            ),
            **(distributed or {}),
        }
    )


def _distribution(config: SageMakerConfig) -> dict[str, str]:
    """SageMaker's ``torch_distributed``: the PyTorch container starts torchrun across the hosts.

    These are the hyperparameters the SageMaker SDK sends for that setting; without them every
    host would train its own copy. The config allows several hosts only with PyTorch.
    """
    if config.instance_count == 1:
        return {}
    return {
        "sagemaker_torch_distributed_enabled": "true",
        "sagemaker_instance_type": json.dumps(config.instance_type),
    }


def training_request(
    spec: TrainingJobSpec,
    config: SageMakerConfig,
    *,
    image: str,
    code: S3Uri,
    channels: Mapping[str, S3Uri],
    region: str,
) -> dict[str, Any]:
    """The CreateTrainingJob request, named from a digest of everything else in it."""
    submit_directory = str(code)
    if config.network_isolation:
        if CODE_CHANNEL in channels:
            raise InvalidSpecError(
                f"channels.{CODE_CHANNEL}",
                "with network_isolation the code arrives through a channel of this name; "
                "rename yours",
            )
        channels = {**channels, CODE_CHANNEL: code}
        submit_directory = CODE_CHANNEL_ARCHIVE
    for channel in config.sharded_channels:
        if channel not in channels:
            raise InvalidSpecError(
                "compute_config.sharded_channels",
                f"no channel {channel!r}; have {sorted(channels)}",
            )
    resources: dict[str, Any] = {
        "InstanceType": config.instance_type,
        "InstanceCount": config.instance_count,
        "VolumeSizeInGB": config.volume_size_gb,
    }
    if config.volume_kms_key_id:
        resources["VolumeKmsKeyId"] = config.volume_kms_key_id
    if config.keep_alive_seconds:
        resources["KeepAlivePeriodInSeconds"] = config.keep_alive_seconds
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": config.max_run_seconds}
    output: dict[str, str] = {"S3OutputPath": str(config.s3_prefix.child("training"))}
    if config.output_kms_key_id:
        output["KmsKeyId"] = config.output_kms_key_id
    request: dict[str, Any] = {
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": config.input_mode,
            "MetricDefinitions": check_value(
                "sagemaker",
                "MetricDefinitionList",
                [m.as_sagemaker() for m in spec.metric_definitions],
                "metric_definitions",
            ),
        },
        "RoleArn": config.role_arn,
        "InputDataConfig": [
            {
                "ChannelName": validate_channel_name(name),
                **(
                    {"ContentType": spec.content_types[name]}
                    if spec.content_types.get(name)
                    else {}
                ),
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": str(uri),
                        "S3DataDistributionType": "ShardedByS3Key"
                        if name in config.sharded_channels
                        else "FullyReplicated",
                    }
                },
            }
            for name, uri in sorted(channels.items())
        ],
        "OutputDataConfig": output,
        "ResourceConfig": resources,
        "StoppingCondition": stopping,
        "HyperParameters": contract_hyperparameters(
            spec.hyperparameters, spec.entry_point, submit_directory, region, _distribution(config)
        ),
        "Environment": {**config.environment, **spec.environment},
        "EnableNetworkIsolation": config.network_isolation,
        "Tags": config.tag_list({"flywheel:job": spec.job_name}),
    }
    if config.spot:
        request["EnableManagedSpotTraining"] = True
        stopping["MaxWaitTimeInSeconds"] = config.max_wait_seconds or config.max_run_seconds
        request["CheckpointConfig"] = {
            "S3Uri": str(config.checkpoint_s3_uri),
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        }
    if config.vpc_config:
        request["VpcConfig"] = config.vpc_config
    name = naming.validate_name("job_name", naming.resource_name(spec.job_name, "train", request))
    if config.spot:
        # Each logical job checkpoints under its own name, and every attempt of it (``-a2`` after
        # a spot time-out) keeps that prefix, so a retry resumes from what the last one saved.
        request["CheckpointConfig"]["S3Uri"] = str(config.checkpoint_s3_uri.child(name))
    named = {"TrainingJobName": name, **request}
    return dict(check_request("sagemaker", "CreateTrainingJob", named))


def final_metrics(
    description: Mapping[str, Any], defined: set[str], from_logs: Mapping[str, float]
) -> dict[str, float]:
    """SageMaker's ``FinalMetricDataList`` for our metric names, falling back to what the logs showed."""
    reported = {
        item["MetricName"]: float(item["Value"])
        for item in description.get("FinalMetricDataList", [])
        if item["MetricName"] in defined
    }
    return {**{k: v for k, v in from_logs.items() if k in defined}, **reported}
