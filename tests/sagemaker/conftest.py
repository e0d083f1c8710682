"""Shared fixtures: Stubber-backed clients (every request checked against the real service model)
and a fake clock, so state machines run in microseconds with no AWS and no sleeping."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

import boto3
import pytest
from botocore.stub import Stubber

from flywheel.components.compute.sagemaker import AwsClients, SageMakerConfig

# The retry tests' real-process fixture: moto for S3 and logs, the fake for SageMaker.
from .retry_harness import aws  # noqa: F401 - a fixture, shared by importing it here

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/flywheel-sagemaker-execution"
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@dataclass
class FakeClock:
    """Advances only when slept on; records every sleep. ``on_sleep`` lets a test act mid-poll."""

    time: float = 0.0
    sleeps: list[float] = field(default_factory=list)
    on_sleep: object = None

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds
        if callable(self.on_sleep):
            self.on_sleep(len(self.sleeps))


@dataclass
class Stubbed:
    clients: AwsClients
    sagemaker: Stubber
    s3: Stubber
    logs: Stubber

    def verify(self) -> None:
        for stub in (self.sagemaker, self.s3, self.logs):
            stub.assert_no_pending_responses()


@pytest.fixture
def stubbed(monkeypatch) -> Stubbed:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    session = boto3.session.Session(region_name=REGION)
    clients = AwsClients(
        sagemaker=session.client("sagemaker"),
        s3=session.client("s3"),
        logs=session.client("logs"),
        region=REGION,
    )
    stubs = Stubbed(clients, Stubber(clients.sagemaker), Stubber(clients.s3), Stubber(clients.logs))
    for stub in (stubs.sagemaker, stubs.s3, stubs.logs):
        stub.activate()
    yield stubs
    for stub in (stubs.sagemaker, stubs.s3, stubs.logs):
        stub.deactivate()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def base_config(**overrides: object) -> SageMakerConfig:
    raw: dict[str, object] = {
        "role_arn": ROLE,
        "s3_prefix": "s3://flywheel-test/runs",
        "region": REGION,
        "image_uri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
    }
    raw.update(overrides)
    return SageMakerConfig.from_mapping(raw)
