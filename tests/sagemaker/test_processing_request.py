"""The CreateProcessingJob request: the SDK's code layout, every field the service model's, and
bad input refused, naming the field, before any AWS call."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import pytest
from botocore.model import Shape

from flywheel.components.compute.sagemaker import SageMakerBackend
from flywheel.components.compute.sagemaker.naming import NAME_PATTERN
from flywheel.components.compute.sagemaker.processing import processing_request
from flywheel.components.compute.sagemaker.s3 import S3Uri
from flywheel.components.compute.sagemaker.validation import service_model
from flywheel.components.contract.processing import (
    ProcessingInput,
    ProcessingJobSpec,
    ProcessingOutput,
)
from flywheel.components.errors import InvalidSpecError

from .conftest import base_config

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
CODE = S3Uri("flywheel-test", "runs/code/0123456789abcdef/sourcedir.tar.gz")
ENTRYPOINT = S3Uri("flywheel-test", "runs/code/fedcba9876543210/runproc.sh")
RAW = S3Uri("flywheel-test", "data/raw")


def spec(**changes: Any) -> ProcessingJobSpec:
    base = ProcessingJobSpec(
        job_name="qsar-features",
        source_dir="examples/qsar",
        entry_point="preprocess.py",
        inputs=(ProcessingInput("raw", str(RAW)),),
        outputs=(
            ProcessingOutput("features", destination="s3://flywheel-test/features"),
            ProcessingOutput("report", local_path="/opt/ml/processing/report"),
        ),
        arguments=("--test-fraction", "0.2"),
        environment={"STAGE": "features"},
    )
    return replace(base, **changes)


def request_for(job: ProcessingJobSpec | None = None, **config: object) -> dict[str, Any]:
    job = job or spec()
    return processing_request(
        job,
        base_config(**config),
        image=IMAGE,
        code=CODE,
        entrypoint=ENTRYPOINT,
        inputs={item.name: S3Uri("flywheel-test", f"data/{item.name}") for item in job.inputs},
        outputs={
            "features": S3Uri("flywheel-test", "features"),
            "report": None,
        },
    )


def unknown_members(shape: Shape, value: Any, path: str) -> Iterator[str]:
    """Keys the service model does not have: the strict check skips them, the service refuses."""
    if shape.type_name == "structure" and isinstance(value, Mapping):
        for name, item in value.items():
            if name not in shape.members:
                yield f"{path}.{name}"
            else:
                yield from unknown_members(shape.members[name], item, f"{path}.{name}")
    elif shape.type_name == "list" and isinstance(value, list):
        for index, item in enumerate(value):
            yield from unknown_members(shape.member, item, f"{path}[{index}]")


def test_every_field_of_the_request_is_one_create_processing_job_has():
    shape = service_model("sagemaker").operation_model("CreateProcessingJob").input_shape
    assert list(unknown_members(shape, request_for(), "CreateProcessingJob")) == []


def test_code_arrives_as_the_sdks_framework_processor_sends_it():
    request = request_for()

    inputs = [(i["InputName"], i["S3Input"]) for i in request["ProcessingInputs"]]
    assert [name for name, _ in inputs] == ["raw", "code", "entrypoint"]
    code, entrypoint = inputs[1][1], inputs[2][1]
    assert code == {
        "S3Uri": str(CODE),
        "LocalPath": "/opt/ml/processing/input/code",
        "S3DataType": "S3Prefix",
        "S3InputMode": "File",
        "S3DataDistributionType": "FullyReplicated",
        "S3CompressionType": "None",
    }
    assert entrypoint["S3Uri"] == str(ENTRYPOINT)
    assert entrypoint["LocalPath"] == "/opt/ml/processing/input/entrypoint"
    assert request["AppSpecification"] == {
        "ImageUri": IMAGE,
        "ContainerEntrypoint": ["/bin/bash", "/opt/ml/processing/input/entrypoint/runproc.sh"],
        "ContainerArguments": ["--test-fraction", "0.2"],
    }


def test_a_spec_entrypoint_replaces_runproc_and_no_arguments_leaves_the_member_out():
    request = request_for(spec(container_entrypoint=("python3", "-c", "print(1)"), arguments=()))

    assert request["AppSpecification"]["ContainerEntrypoint"] == ["python3", "-c", "print(1)"]
    assert "ContainerArguments" not in request["AppSpecification"], "the service takes 1-100"


def test_a_sharded_input_on_two_instances_gives_each_host_its_share():
    sharded = spec(
        inputs=(
            ProcessingInput("raw", str(RAW), distribution="ShardedByS3Key"),
            ProcessingInput("lookup", "s3://flywheel-test/data/lookup", "/opt/ml/processing/lk"),
        ),
        instance_count=2,
    )
    request = request_for(sharded, processing_instance_type="ml.c5.2xlarge")

    by_name = {i["InputName"]: i["S3Input"] for i in request["ProcessingInputs"]}
    assert by_name["raw"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert by_name["raw"]["LocalPath"] == "/opt/ml/processing/input/raw"
    assert by_name["lookup"]["S3DataDistributionType"] == "FullyReplicated"
    assert by_name["lookup"]["LocalPath"] == "/opt/ml/processing/lk"
    assert request["ProcessingResources"] == {
        "ClusterConfig": {
            "InstanceCount": 2,
            "InstanceType": "ml.c5.2xlarge",
            "VolumeSizeInGB": 30,
        }
    }


def test_environment_merges_config_under_spec_and_tags_name_the_job():
    request = request_for(
        environment={"STAGE": "config", "TEAM": "chem"}, tags={"cost-centre": "ml"}
    )

    assert request["Environment"] == {"STAGE": "features", "TEAM": "chem"}
    assert request["Tags"] == [
        {"Key": "cost-centre", "Value": "ml"},
        {"Key": "flywheel:job", "Value": "qsar-features"},
    ]
    assert request["RoleArn"] == base_config().role_arn
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 24 * 3600}


def test_outputs_upload_at_end_of_job_and_one_without_destination_lands_under_the_job():
    request = request_for()
    name = request["ProcessingJobName"]

    assert request["ProcessingOutputConfig"] == {
        "Outputs": [
            {
                "OutputName": "features",
                "S3Output": {
                    "S3Uri": "s3://flywheel-test/features",
                    "LocalPath": "/opt/ml/processing/output/features",
                    "S3UploadMode": "EndOfJob",
                },
            },
            {
                "OutputName": "report",
                "S3Output": {
                    "S3Uri": f"s3://flywheel-test/runs/processing/{name}/report",
                    "LocalPath": "/opt/ml/processing/report",
                    "S3UploadMode": "EndOfJob",
                },
            },
        ]
    }


def test_encryption_isolation_and_vpc_come_from_the_config():
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    request = request_for(
        volume_kms_key_id=key,
        output_kms_key_id=key,
        network_isolation=True,
        subnets=["subnet-0a1b2c3d"],
        security_group_ids=["sg-0a1b2c3d"],
    )

    assert request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == key
    assert request["ProcessingOutputConfig"]["KmsKeyId"] == key
    assert request["NetworkConfig"] == {
        "EnableNetworkIsolation": True,
        "VpcConfig": {"Subnets": ["subnet-0a1b2c3d"], "SecurityGroupIds": ["sg-0a1b2c3d"]},
    }


def test_the_same_spec_gives_the_same_name_and_a_changed_one_another():
    name = request_for()["ProcessingJobName"]

    assert request_for()["ProcessingJobName"] == name
    assert request_for(spec(arguments=("--test-fraction", "0.3")))["ProcessingJobName"] != name
    assert name.startswith("process-qsar-features-")
    assert NAME_PATTERN.match(name) and len(name) <= 59, "room for the -a99 attempt suffix"


# -- refused before any call ---------------------------------------------------------------------


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "source"
    folder.mkdir()
    (folder / "preprocess.py").write_text("print('features')\n")
    return folder


def refusal(stubbed, job: ProcessingJobSpec, **config: object) -> InvalidSpecError:
    """What ``process`` refuses ``job`` with; the stubs hold no responses, so any call would fail."""
    backend = SageMakerBackend(base_config(**config), clients=stubbed.clients)
    with pytest.raises(InvalidSpecError) as caught:
        backend.process(job, log=lambda _: None)
    assert "\n" not in str(caught.value), "one line"
    return caught.value


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        (
            {
                "inputs": tuple(
                    ProcessingInput(f"in{i}", f"s3://flywheel-test/d{i}") for i in range(9)
                )
            },
            "processing.inputs",
            "at most 8",
        ),
        ({"arguments": ("--x",) * 101}, "processing.arguments", "at most 100"),
        (
            {"environment": {f"VAR_{i}": "1" for i in range(101)}},
            "processing.environment",
            "at most 100",
        ),
        (
            {"inputs": (ProcessingInput("raw_data", "s3://flywheel-test/raw"),)},
            "processing.inputs[0].name",
            "letters, digits and hyphens",
        ),
    ],
    ids=["eleven-inputs", "101-arguments", "101-environment", "input-name"],
)
def test_bad_spec_is_refused_naming_the_field_before_any_call(
    stubbed, source, changes, field, problem
):
    error = refusal(stubbed, spec(source_dir=str(source), **changes))

    assert error.field == field
    assert problem in error.problem


def test_config_and_spec_environments_over_the_limit_together_are_refused(stubbed, source):
    # The config's own environment must also fit a batch transform's 16 entries.
    config_environment = {f"CONFIG_{i}": "1" for i in range(16)}
    job = spec(source_dir=str(source), environment={f"SPEC_{i}": "1" for i in range(85)})

    error = refusal(stubbed, job, environment=config_environment)

    assert error.field == "CreateProcessingJob.Environment"
    assert "at most 100" in error.problem


def test_a_run_longer_than_processing_allows_is_refused(stubbed, source):
    error = refusal(stubbed, spec(source_dir=str(source)), max_run_seconds=10 * 24 * 3600)

    assert error.field == "CreateProcessingJob.StoppingCondition.MaxRuntimeInSeconds"


def test_an_unknown_processing_instance_type_is_refused_naming_the_key():
    with pytest.raises(InvalidSpecError, match="not a SageMaker processing instance type") as err:
        base_config(processing_instance_type="ml.m5.huge")
    assert err.value.field == "compute_config.processing_instance_type"
    assert "ml.m5.xlarge" in err.value.problem, "suggests the family's real sizes"
