"""Real step processes against a SageMaker that keeps jobs running: the retry tests' harness.

Moto serves S3 and CloudWatch Logs; :class:`FakeSageMaker` holds jobs InProgress until a test ends
them. Each attempt of a step is a real process, started with :func:`launch`, so tests can SIGKILL
or SIGTERM it and start the next attempt, as KFP's retry does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from .fake_sagemaker import FakeSageMaker
from .moto_sagemaker import free_port

BUCKET = "flywheel-retry"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


@dataclass
class Aws:
    sagemaker: FakeSageMaker
    env: dict[str, str]


@pytest.fixture
def aws() -> Iterator[Aws]:
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    moto_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_url,
    }
    boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=BUCKET)
    try:
        with FakeSageMaker(moto_url) as sagemaker:
            yield Aws(sagemaker, {**env, "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker.url})
    finally:
        moto.stop()


@dataclass
class Attempt:
    process: subprocess.Popen
    log: Path

    def wait(self) -> int:
        return self.process.wait(timeout=60)

    @property
    def output(self) -> str:
        return self.log.read_text()


def launch(aws: Aws, driver: Path, arguments: Sequence[str], log: Path) -> Attempt:
    """Start one attempt of a step: ``driver`` with ``arguments``, its output kept in ``log``."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-u", str(driver), *arguments],
            env=aws.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Attempt(process, log)


TRAIN_STEP = Path(__file__).with_name("train_step_process.py")


def train_step(aws: Aws, folder: Path, attempt: int, **config: object) -> Attempt:
    """One attempt of the real train step on a two-row dataset; ``config`` adds compute_config keys."""
    from .conftest import ROLE  # conftest imports this module for its fixture

    train, test = folder / "train.csv", folder / "test.csv"
    for path in (train, test):
        path.write_text("compound_id,smiles,pIC50\nc1,CCO,5.1\nc2,CCN,6.2\n")
    compute = {
        "role_arn": ROLE,
        "s3_prefix": f"s3://{BUCKET}/flywheel",
        "image_uri": IMAGE,
        **config,
    }
    arguments = [str(train), str(test), str(folder / "model.tar.gz"), json.dumps(compute)]
    return launch(aws, TRAIN_STEP, arguments, folder / f"attempt-{attempt}.log")


def failed_first_attempt(aws: Aws, folder: Path) -> tuple[str, Attempt]:
    """Attempt 1 of the train step, whose job SageMaker fails: the job's name and the attempt."""
    fake = aws.sagemaker
    first = train_step(aws, folder, 1)
    fake.wait_for(lambda: len(fake.jobs) == 1)
    (name,) = fake.jobs
    fake.finish(name, "Failed", "AlgorithmError: out of memory")
    assert first.wait() == 1
    return name, first
