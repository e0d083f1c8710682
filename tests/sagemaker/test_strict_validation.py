"""The strict validator: what the real service refuses, every client in the tests refuses too."""

from __future__ import annotations

import subprocess
import sys

import boto3
import pytest
from botocore.exceptions import ParamValidationError

from flywheel.components.compute.sagemaker.validation import check_request, check_value
from flywheel.components.errors import InvalidSpecError

from .conftest import ROLE


def sagemaker_client():
    return boto3.client(
        "sagemaker",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        endpoint_url="http://127.0.0.1:9",
    )


def test_every_test_client_refuses_a_quoted_metadata_value_before_sending():
    with pytest.raises(ParamValidationError, match=r"CustomerMetadataProperties\['hp.max'\]"):
        sagemaker_client().create_model_package(
            ModelPackageGroupName="qsar",
            CustomerMetadataProperties={"hp.max": '"sqrt"'},
        )


def test_every_test_client_refuses_more_tags_than_sagemaker_allows():
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    with pytest.raises(ParamValidationError, match="has 51 items; at most 50"):
        sagemaker_client().add_tags(ResourceArn="arn:aws:sagemaker:us-east-1:1:model/m", Tags=tags)


def test_clients_in_child_processes_are_strict_too():
    code = (
        "import boto3\n"
        "c = boto3.client('sagemaker', region_name='us-east-1', aws_access_key_id='a',"
        " aws_secret_access_key='b', endpoint_url='http://127.0.0.1:9')\n"
        "c.stop_training_job(TrainingJobName='bad name!')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "ParamValidationError" in done.stderr
    assert "TrainingJobName" in done.stderr


def test_request_check_names_the_field_and_the_rule():
    with pytest.raises(InvalidSpecError, match=r"CreateModel.ExecutionRoleArn.*at least 20"):
        check_request("sagemaker", "CreateModel", {"ModelName": "m", "ExecutionRoleArn": "x"})


def test_enum_values_are_checked():
    request = {
        "ModelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/q/1",
        "ModelApprovalStatus": "Approve",
    }
    with pytest.raises(InvalidSpecError, match="'Approve' is not one of Approved"):
        check_request("sagemaker", "UpdateModelPackage", request)


def test_a_valid_request_passes_unchanged():
    request = {"ModelName": "qsar-model", "ExecutionRoleArn": ROLE}
    assert check_request("sagemaker", "CreateModel", request) is request


def test_value_check_names_the_config_field():
    with pytest.raises(InvalidSpecError, match=r"compute_config.subnets.*at most 16"):
        check_value(
            "sagemaker", "Subnets", [f"subnet-{i}" for i in range(17)], "compute_config.subnets"
        )
