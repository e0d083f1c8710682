"""boto3 clients the way every Flywheel component makes them.

Adaptive retry mode adds client-side rate limiting on top of standard retries: a throttled call
waits and retries instead of failing a two-hour job at minute 90. Ten attempts per call. The AWS
SDKs' own settings change both: ``AWS_RETRY_MODE`` (``standard``, ``adaptive``, ``legacy``) and
``AWS_MAX_ATTEMPTS`` (counting the first attempt). The SageMaker launcher rides out throttling
beyond that on its own (``sagemaker/throttling.py``).
``endpoint_url`` points a client at a stand-in such as a moto server.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_MAX_ATTEMPTS = 10
RETRY_MODES = ("standard", "adaptive", "legacy")


def _retries() -> Config:
    """Adaptive mode and ten attempts, unless the environment sets them the AWS SDKs' way.

    A value botocore would refuse is left to the default rather than failing every import.
    """
    mode = os.environ.get("AWS_RETRY_MODE", "")
    attempts = os.environ.get("AWS_MAX_ATTEMPTS", "")
    return Config(
        retries={
            "mode": mode if mode in RETRY_MODES else "adaptive",
            "max_attempts": int(attempts)
            if attempts.isdigit() and int(attempts) > 0
            else DEFAULT_MAX_ATTEMPTS,
        }
    )


RETRIES = _retries()


def aws_client(service: str, region: str, endpoint_url: str = "") -> Any:
    return boto3.client(
        service, region_name=region, endpoint_url=endpoint_url or None, config=RETRIES
    )
