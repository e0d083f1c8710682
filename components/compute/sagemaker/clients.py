"""boto3 clients for one region, all with adaptive retries, so throttling slows us down instead of failing the step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3

from flywheel.components.compute.aws import RETRIES
from flywheel.components.errors import InvalidSpecError


@dataclass(frozen=True)
class AwsClients:
    """The three services a SageMaker job touches. Built once per step and passed in."""

    sagemaker: Any
    s3: Any
    logs: Any
    region: str

    @classmethod
    def connect(cls, region: str | None, endpoint_url: str | None = None) -> AwsClients:
        """Clients for ``region``; ``endpoint_url`` points every service at one server (moto, a VPC endpoint)."""
        session = boto3.session.Session(region_name=region)
        check_credentials(session)
        resolved = session.region_name or "us-east-1"

        def client(service: str) -> Any:
            return session.client(
                service, region_name=resolved, endpoint_url=endpoint_url, config=RETRIES
            )

        return cls(
            sagemaker=client("sagemaker"), s3=client("s3"), logs=client("logs"), region=resolved
        )


def check_credentials(session: boto3.session.Session | None = None) -> None:
    """Refuse to start without AWS credentials, in one line, instead of failing mid-run.

    Resolving credentials reads the environment, the shared files and the pod's web identity token
    (IRSA) without calling AWS; only on EC2 does it ask the instance metadata service.
    """
    session = session or boto3.session.Session()
    if session.get_credentials() is None:
        raise InvalidSpecError(
            "AWS credentials",
            "none found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, "
            "or give the pod an IAM role (IRSA)",
        )


def console_url(region: str, kind_path: str, name: str) -> str:
    """The SageMaker console page of a job, model or endpoint, for log lines people click."""
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/{kind_path}/{name}"
