"""A SageMaker batch transform job: score every object under an S3 prefix with a model.

SageMaker spreads the input objects across ``InstanceCount`` instances (each object goes to one
instance), so many files scale out; ``SplitType`` cuts files into records and ``BatchStrategy``
groups records into requests of at most ``MaxPayloadInMB``. Both come from the workload's
``serving`` section (through the spec), so a script is called here as on every other backend.
"""

from __future__ import annotations

from typing import Any

from flywheel.components.compute.backend import TransformJobSpec
from flywheel.components.compute.sagemaker import naming
from flywheel.components.compute.sagemaker.s3 import S3Uri
from flywheel.components.compute.sagemaker.specs import SageMakerConfig
from flywheel.components.compute.sagemaker.validation import check_request


def transform_request(
    spec: TransformJobSpec,
    config: SageMakerConfig,
    *,
    model_name: str,
    input_prefix: S3Uri,
    output_prefix: S3Uri,
) -> dict[str, Any]:
    """The CreateTransformJob request, named from a digest of everything else in it."""
    transform_input: dict[str, Any] = {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(input_prefix)}},
        "ContentType": spec.content_type,
        "SplitType": spec.split_type,
    }
    transform_output: dict[str, Any] = {"S3OutputPath": str(output_prefix), "Accept": spec.accept}
    if spec.split_type == "Line":
        # Records cut at newlines are joined back with newlines, one output line per input line.
        transform_output["AssembleWith"] = "Line"
    if config.output_kms_key_id:
        transform_output["KmsKeyId"] = config.output_kms_key_id
    resources: dict[str, Any] = {
        "InstanceType": config.transform_instance_type,
        "InstanceCount": config.transform_instance_count,
    }
    if config.volume_kms_key_id:
        resources["VolumeKmsKeyId"] = config.volume_kms_key_id
    request: dict[str, Any] = {
        "ModelName": model_name,
        "MaxPayloadInMB": config.max_payload_mb,
        "BatchStrategy": spec.batch_strategy,
        "TransformInput": transform_input,
        "TransformOutput": transform_output,
        "TransformResources": resources,
        "Environment": {**config.environment, **spec.environment},
        "Tags": config.tag_list({"flywheel:job": spec.job_name}),
    }
    if config.max_concurrent_transforms:
        request["MaxConcurrentTransforms"] = config.max_concurrent_transforms
    name = naming.resource_name(spec.job_name, "transform", request)
    named = {"TransformJobName": naming.validate_name("job_name", name), **request}
    return dict(check_request("sagemaker", "CreateTransformJob", named))
