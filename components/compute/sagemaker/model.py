"""A SageMaker model: a serving image plus either a model artifact or a registered model package.

Models are named from a digest of their request, so creating "the same model" twice finds the
first one instead of failing or duplicating it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from flywheel.components.compute.backend import LogSink
from flywheel.components.compute.sagemaker import naming
from flywheel.components.compute.sagemaker.clients import AwsClients, console_url
from flywheel.components.compute.sagemaker.errors import is_not_found
from flywheel.components.compute.sagemaker.s3 import S3Uri
from flywheel.components.compute.sagemaker.specs import SageMakerConfig
from flywheel.components.compute.sagemaker.validation import check_request
from flywheel.components.errors import InvalidSpecError


def model_request(
    label: str,
    config: SageMakerConfig,
    *,
    image: str | None = None,
    model_data: S3Uri | None = None,
    model_package_arn: str | None = None,
    environment: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """CreateModel from a model artifact (with an image) or from a model package ARN (its own image)."""
    if (model_data is None) == (model_package_arn is None):
        raise InvalidSpecError("model", "give either a model artifact or a model package ARN")
    container: dict[str, Any]
    if model_package_arn is not None:
        container = {"ModelPackageName": model_package_arn}
    else:
        if image is None:
            raise InvalidSpecError("image_uri", "a model artifact needs a serving image")
        container = {"Image": image, "ModelDataUrl": str(model_data)}
    if environment:
        container["Environment"] = dict(sorted(environment.items()))
    request: dict[str, Any] = {
        "PrimaryContainer": container,
        "ExecutionRoleArn": config.role_arn,
        "EnableNetworkIsolation": config.network_isolation,
        "Tags": config.tag_list({"flywheel:model": label}),
    }
    if config.vpc_config:
        request["VpcConfig"] = config.vpc_config
    name = naming.resource_name(label, "model", request)
    named = {"ModelName": naming.validate_name("model_name", name), **request}
    return dict(check_request("sagemaker", "CreateModel", named))


def ensure_model(clients: AwsClients, request: Mapping[str, Any], log: LogSink) -> bool:
    """Create the model unless it exists; True when this call created it."""
    name = request["ModelName"]
    try:
        clients.sagemaker.describe_model(ModelName=name)
        log(f"[{name}] model exists; reusing it")
        return False
    except ClientError as error:
        if not is_not_found(error):
            raise
    clients.sagemaker.create_model(**request)
    log(f"[{name}] created model  {console_url(clients.region, 'models', name)}")
    return True


def delete_model(clients: AwsClients, name: str, log: LogSink) -> None:
    """Delete a model made for one job; one already gone is fine (a retry deleted it)."""
    try:
        clients.sagemaker.delete_model(ModelName=name)
    except ClientError as error:
        if not is_not_found(error):
            raise
        return
    log(f"[{name}] deleted the model made for this transform")
