"""A moto server on 127.0.0.1 that stands in for SageMaker, S3 and CloudWatch Logs.

moto marks every job Completed at once and runs no container, so a "completed" training job has
no model.tar.gz and a transform job no output. ``SageMakerWorker`` fills that gap in the test
only: when moto accepts CreateTrainingJob it uploads a placeholder archive to the job's expected
output key, and when it accepts CreateTransformJob it writes one placeholder prediction per input
row to the expected ``<input>.out`` keys. Product code never fakes results.
"""

from __future__ import annotations

import io
import socket
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from moto.sagemaker.models import SageMakerModelBackend
from moto.server import ThreadedMotoServer

PLACEHOLDER_PREDICTION = "5.0"


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


@contextmanager
def moto_sagemaker(monkeypatch) -> Iterator[str]:
    """A running moto server with the worker hooked in; yields its endpoint URL."""
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

    monkeypatch.setattr(SageMakerModelBackend, "create_training_job", create_training_job)
    monkeypatch.setattr(SageMakerModelBackend, "create_transform_job", create_transform_job)
    try:
        yield endpoint_url
    finally:
        server.stop()
