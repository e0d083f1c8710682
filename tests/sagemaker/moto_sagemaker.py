"""A moto server on 127.0.0.1 that stands in for SageMaker, S3 and CloudWatch Logs.

moto marks every job Completed at once and runs no container, so a "completed" training job has
no model.tar.gz and a transform job no output. ``SageMakerWorker`` fills that gap in the test
only: when moto accepts CreateTrainingJob it uploads a placeholder archive to the job's expected
output key, and when it accepts CreateTransformJob it writes one placeholder prediction per input
row to the expected ``<input>.out`` keys. Product code never fakes results.

``moto_sagemaker(monkeypatch, run_jobs=True)`` runs processing and training jobs instead, as the
service runs their containers (``container_runner.py``): the job's inputs come from S3, its code
runs under the container contract on this machine, and what it wrote goes back to S3, so a later
step gets a real model or a real report. The job runs inside the Create call (its describe is then
final at once, as moto's always is); a failing script makes the job ``Failed`` with SageMaker's
``FailureReason`` (and, for processing, ``ExitMessage``). The job's output goes to CloudWatch Logs
as one stream, ``<job>/algo-1-<epoch>``, so the runner's log tailer and metric regexes see it.
Transform jobs stay placeholders in both modes. A job must end within botocore's 60 s read timeout,
as the Create call waits for it.
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import boto3
from moto.sagemaker.models import SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.server import ThreadedMotoServer

from flywheel.components.compute.sagemaker.jobs import PROCESSING, TRAINING
from flywheel.components.errors import FlywheelError

from .container_runner import run_processing_job, run_training_job

PLACEHOLDER_PREDICTION = "5.0"
# What SageMaker says of a processing job whose script failed; the script's words are ExitMessage.
PROCESSING_FAILURE = "AlgorithmError: See job logs for more information"
EXIT_MESSAGE_LIMIT = 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key.strip("/")


def one_file_archive(name: str, body: bytes) -> bytes:
    """A ``model.tar.gz`` holding one file, as a fake's trained model."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def placeholder_model_archive() -> bytes:
    return one_file_archive("PLACEHOLDER.txt", b"placeholder: moto runs no training container\n")


class SageMakerWorker:
    """Writes what a real job would have written, as moto accepts each job."""

    def __init__(self, endpoint_url: str) -> None:
        self._s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1")

    def after_training_job(self, kwargs: dict[str, Any]) -> None:
        bucket, prefix = _split(kwargs["output_data_config"]["S3OutputPath"])
        key = f"{prefix}/{kwargs['training_job_name']}/output/model.tar.gz".lstrip("/")
        self._s3.put_object(Bucket=bucket, Key=key, Body=placeholder_model_archive())

    def after_transform_job(self, kwargs: dict[str, Any]) -> None:
        in_bucket, in_prefix = _split(
            kwargs["transform_input"]["DataSource"]["S3DataSource"]["S3Uri"]
        )
        out_bucket, out_prefix = _split(kwargs["transform_output"]["S3OutputPath"])
        listing = self._s3.list_objects_v2(Bucket=in_bucket, Prefix=in_prefix)
        for item in listing.get("Contents", []):
            body = self._s3.get_object(Bucket=in_bucket, Key=item["Key"])["Body"].read().decode()
            # Scoring sends text/csv as batch transform's default decoder expects it: no header.
            rows = len([line for line in body.splitlines() if line.strip()])
            relative = item["Key"][len(in_prefix) :].lstrip("/")
            self._s3.put_object(
                Bucket=out_bucket,
                Key=f"{out_prefix}/{relative}.out",
                Body=("\n".join([PLACEHOLDER_PREDICTION] * rows) + "\n").encode(),
            )


class JobRunner:
    """Runs each processing and training job moto accepts, and records how it ended on moto's job."""

    def __init__(self, endpoint_url: str) -> None:
        self._s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1")
        self._logs = boto3.client("logs", endpoint_url=endpoint_url, region_name="us-east-1")

    def _write_logs(self, log_group: str, job_name: str, lines: list[str]) -> None:
        """The job's output in CloudWatch, one event per line; every host's lines go to one stream
        (``algo-1``), where SageMaker keeps a stream per instance."""
        with suppress(self._logs.exceptions.ResourceAlreadyExistsException):
            self._logs.create_log_group(logGroupName=log_group)
        stream = f"{job_name}/algo-1-{int(time.time())}"
        self._logs.create_log_stream(logGroupName=log_group, logStreamName=stream)
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line or " "} for line in lines]
        for start in range(0, len(events), 1000):
            self._logs.put_log_events(
                logGroupName=log_group, logStreamName=stream, logEvents=events[start : start + 1000]
            )

    def _run(self, run, request: dict[str, Any], log_group: str, name: str):
        """``run``'s result, or the reason it failed (a stand-in bug fails the job too, loudly)."""
        lines: list[str] = []
        try:
            return run(self._s3, request, lines.append), None
        except FlywheelError as error:
            return None, getattr(error, "reason", str(error))
        except Exception as error:  # the job fails, naming the stand-in's own error
            return None, f"the moto stand-in could not run the job: {type(error).__name__}: {error}"
        finally:
            self._write_logs(log_group, name, lines)

    def processing_job(self, job: Any, request: dict[str, Any]) -> None:
        name = request["ProcessingJobName"]
        _, failure = self._run(run_processing_job, request, PROCESSING.log_group, name)
        if failure is not None:
            job.processing_job_status = "Failed"
            job.failure_reason = PROCESSING_FAILURE
            job.exit_message = failure[:EXIT_MESSAGE_LIMIT]

    def training_job(self, job: Any, request: dict[str, Any]) -> None:
        name = request["TrainingJobName"]
        # moto replaces the request's metric definitions with a built-in algorithm's.
        job.algorithm_specification = request["AlgorithmSpecification"]
        result, failure = self._run(run_training_job, request, TRAINING.log_group, name)
        if failure is not None:
            job.training_job_status = job.secondary_status = "Failed"
            job.failure_reason = f"AlgorithmError: {failure}"
            job.final_metric_data_list = []
            return
        job.final_metric_data_list = [
            {"MetricName": metric, "Value": value, "Timestamp": job.training_end_time}
            for metric, value in result.metrics.items()
        ]


def _run_jobs(monkeypatch, endpoint_url: str) -> None:
    """Hook the runner in where moto parses the request: its model keeps only some of the fields
    (no Environment, no ProcessingResources), and the container needs all of them."""
    runner = JobRunner(endpoint_url)
    original_processing = SageMakerResponse.create_processing_job
    original_training = SageMakerResponse.create_training_job

    def create_processing_job(self):
        request = json.loads(self.body)
        response = original_processing(self)
        job = self.sagemaker_backend.processing_jobs[request["ProcessingJobName"]]
        runner.processing_job(job, request)
        return response

    def create_training_job(self):
        request = json.loads(self.body)
        response = original_training(self)
        job = self.sagemaker_backend.training_jobs[request["TrainingJobName"]]
        runner.training_job(job, request)
        return response

    monkeypatch.setattr(SageMakerResponse, "create_processing_job", create_processing_job)
    monkeypatch.setattr(SageMakerResponse, "create_training_job", create_training_job)


@contextmanager
def moto_sagemaker(monkeypatch, *, run_jobs: bool = False) -> Iterator[str]:
    """A running moto server with the worker hooked in; yields its endpoint URL.

    ``run_jobs`` runs processing and training jobs for real (see the module's docstring) instead
    of writing a placeholder model.
    """
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint_url = f"http://127.0.0.1:{port}"
    worker = SageMakerWorker(endpoint_url)
    original_training = SageMakerModelBackend.create_training_job
    original_transform = SageMakerModelBackend.create_transform_job

    def create_training_job(self, **kwargs):
        job = original_training(self, **kwargs)
        worker.after_training_job(kwargs)
        return job

    def create_transform_job(self, **kwargs):
        job = original_transform(self, **kwargs)
        worker.after_transform_job(kwargs)
        return job

    if run_jobs:
        _run_jobs(monkeypatch, endpoint_url)
    else:
        monkeypatch.setattr(SageMakerModelBackend, "create_training_job", create_training_job)
    monkeypatch.setattr(SageMakerModelBackend, "create_transform_job", create_transform_job)
    try:
        yield endpoint_url
    finally:
        server.stop()


@contextmanager
def moto_account(monkeypatch, bucket: str, *, run_jobs: bool = False) -> Iterator[str]:
    """Fake credentials, :func:`moto_sagemaker` and an S3 bucket: one test's AWS account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with moto_sagemaker(monkeypatch, run_jobs=run_jobs) as endpoint_url:
        boto3.client("s3", endpoint_url=endpoint_url).create_bucket(Bucket=bucket)
        yield endpoint_url
