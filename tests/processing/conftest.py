"""Processing tests: our own SageMaker-style scripts (``scripts/``) and an S3 on moto."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from flywheel.components.compute.local.processing import LocalProcessor
from flywheel.components.contract.processing import ProcessingJobSpec, ProcessingResult

BUCKET = "processing"


@pytest.fixture
def s3(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An S3 client on the session's moto server; jobs inherit its endpoint and fake keys."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_server,
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3")
    if BUCKET not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def bucket(s3: Any) -> str:
    """The bucket ``s3`` made."""
    return BUCKET


@pytest.fixture
def process(tmp_path: Path) -> Callable[..., ProcessingResult]:
    """Run a spec on a ``LocalProcessor`` whose default outputs go under ``tmp_path``."""

    def run(spec: ProcessingJobSpec, log: Callable[[str], None] = lambda _: None):
        return LocalProcessor(output_root=tmp_path / "outputs").process(spec, log)

    return run
