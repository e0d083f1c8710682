"""boto3 clients the way every Flywheel component makes them.

Adaptive retry mode adds client-side rate limiting on top of standard retries: a throttled call
waits and retries instead of failing a two-hour job at minute 90. ``endpoint_url`` points a
client at a stand-in such as a moto server.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

RETRIES = Config(retries={"mode": "adaptive", "max_attempts": 10})


def aws_client(service: str, region: str, endpoint_url: str = "") -> Any:
    return boto3.client(
        service, region_name=region, endpoint_url=endpoint_url or None, config=RETRIES
    )
