"""A moto S3 server on 127.0.0.1 that the tasks of a local run reach through AWS_ENDPOINT_URL."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import requests

BUCKET = "flywheel-data"


@pytest.fixture
def s3(moto_s3: Callable[[str], Any]) -> Any:
    """An S3 client, and the environment every task inherits: fake keys and the moto endpoint."""
    return moto_s3(BUCKET)


@pytest.fixture
def without_read_access(s3, moto_server: str, monkeypatch) -> Iterator[Callable[[], None]]:
    """Call it to become a user allowed only s3:ListBucket, with moto checking IAM from then on."""
    iam = boto3.client("iam")
    name = f"reader-{len(iam.list_users()['Users'])}"
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name,
        PolicyName="list-only",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]

    def deny() -> None:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        _reset_auth(moto_server, b"0")

    try:
        yield deny
    finally:
        _reset_auth(moto_server, b"inf")


def _reset_auth(endpoint: str, free_requests: bytes) -> None:
    """Moto checks signatures and IAM policies after this many more requests ("inf": never)."""
    requests.post(
        f"{endpoint}/moto-api/reset-auth", data=free_requests, timeout=10
    ).raise_for_status()
