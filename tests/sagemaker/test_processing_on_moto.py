"""A processing job through the SageMaker backend against a moto server: staged, created,
completed, its outputs collected; a second run reattaches instead of creating another job."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.sagemaker.models import SageMakerModelBackend

from flywheel.components.compute.sagemaker import SageMakerBackend, SageMakerConfig, Watch
from flywheel.components.contract.processing import (
    ProcessingInput,
    ProcessingJobSpec,
    ProcessingOutput,
    runproc_script,
)

from .conftest import ROLE, FakeClock
from .moto_sagemaker import moto_sagemaker

BUCKET = "flywheel-processing"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key.strip("/")


def write_outputs(endpoint_url: str, kwargs: dict[str, Any]) -> None:
    """What a script would have uploaded: moto runs no container, so each output gets one file
    naming the inputs the job was given (test code only; product code never fakes results)."""
    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1")
    inputs = ",".join(item["InputName"] for item in kwargs["processing_inputs"])
    for output in kwargs["processing_output_config"]["Outputs"]:
        bucket, prefix = _split(output["S3Output"]["S3Uri"])
        s3.put_object(Bucket=bucket, Key=f"{prefix}/part-0.csv", Body=inputs.encode())


@pytest.fixture
def aws(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with moto_sagemaker(monkeypatch) as endpoint_url:
        original = SageMakerModelBackend.create_processing_job

        def create_processing_job(self, **kwargs):
            job = original(self, **kwargs)
            write_outputs(endpoint_url, kwargs)
            return job

        monkeypatch.setattr(SageMakerModelBackend, "create_processing_job", create_processing_job)
        boto3.client("s3", endpoint_url=endpoint_url).create_bucket(Bucket=BUCKET)
        yield endpoint_url


def job_spec(folder: Path) -> ProcessingJobSpec:
    source = folder / "source"
    source.mkdir()
    (source / "preprocess.py").write_text("print('features')\n")
    raw = folder / "raw"
    raw.mkdir()
    for index in range(2):
        (raw / f"part-{index}.csv").write_text(f"compound_id,smiles\nc{index},CCO\n")
    return ProcessingJobSpec(
        job_name="qsar-features",
        source_dir=str(source),
        entry_point="preprocess.py",
        inputs=(ProcessingInput("raw", str(raw), distribution="ShardedByS3Key"),),
        outputs=(
            ProcessingOutput("features", destination=str(folder / "features")),
            ProcessingOutput("report"),
        ),
        arguments=("--test-fraction", "0.2"),
        instance_count=2,
    )


def read_object(s3: Any, uri: str) -> bytes:
    bucket, key = _split(uri)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_processing_job_completes_on_moto_and_its_outputs_are_collected(aws, tmp_path):
    config = SageMakerConfig.from_mapping(
        {
            "role_arn": ROLE,
            # moto keeps one state per process: a prefix of this test's own.
            "s3_prefix": f"s3://{BUCKET}/{tmp_path.name}",
            "region": "us-east-1",
            "endpoint_url": aws,
            "image_uri": IMAGE,
        }
    )
    spec = job_spec(tmp_path)
    lines: list[str] = []
    backend = SageMakerBackend(config, watch=Watch(clock=FakeClock()))

    result = backend.process(spec, log=lines.append)

    name = result.job_name
    assert (tmp_path / "features" / "part-0.csv").read_text() == "raw,code,entrypoint"
    assert result.outputs == {
        "features": str(tmp_path / "features"),
        "report": f"s3://{BUCKET}/{tmp_path.name}/processing/{name}/report",
    }
    sagemaker = boto3.client("sagemaker", endpoint_url=aws)
    s3 = boto3.client("s3", endpoint_url=aws)
    described = sagemaker.describe_processing_job(ProcessingJobName=name)
    assert described["ProcessingJobStatus"] == "Completed"
    inputs = {item["InputName"]: item["S3Input"] for item in described["ProcessingInputs"]}
    assert inputs["raw"]["S3DataDistributionType"] == "ShardedByS3Key"
    staged = s3.list_objects_v2(Bucket=BUCKET, Prefix=_split(inputs["raw"]["S3Uri"])[1] + "/")
    assert len(staged["Contents"]) == 2, "the local folder was staged file by file"
    runproc = read_object(s3, inputs["entrypoint"]["S3Uri"]).decode()
    assert runproc == runproc_script("preprocess.py")
    with tarfile.open(fileobj=io.BytesIO(read_object(s3, inputs["code"]["S3Uri"]))) as archive:
        assert "preprocess.py" in archive.getnames()
    assert described["AppSpecification"]["ContainerArguments"] == ["--test-fraction", "0.2"]

    again = backend.process(spec, log=lines.append)

    assert again.job_name == name
    summaries = sagemaker.list_processing_jobs(NameContains=name)["ProcessingJobSummaries"]
    assert [s["ProcessingJobName"] for s in summaries] == [name], "the retry created nothing"
    assert any(f"[{name}] processing job exists (Completed): reattaching" in line for line in lines)
