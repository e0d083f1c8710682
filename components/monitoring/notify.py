"""Tell people how a run ended: an SNS topic, a Slack-compatible webhook, or both."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flywheel.components.errors import InvalidSpecError

WEBHOOK_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class NotifyTarget:
    sns_topic_arn: str = ""
    webhook_url: str = ""
    region: str = ""
    endpoint_url: str = ""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> NotifyTarget:
        allowed = set(cls.__dataclass_fields__)
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise InvalidSpecError(
                f"notify.{unknown[0]}", f"unknown; allowed: {', '.join(sorted(allowed))}"
            )
        target = cls(**{key: str(value) for key, value in config.items()})
        if target.sns_topic_arn and not target.sns_topic_arn.startswith("arn:"):
            raise InvalidSpecError(
                "notify.sns_topic_arn", f"{target.sns_topic_arn!r} is not an ARN"
            )
        if target.sns_topic_arn and not target.region:
            raise InvalidSpecError("notify.region", "required with sns_topic_arn")
        if target.webhook_url and not target.webhook_url.startswith(("https://", "http://")):
            raise InvalidSpecError(
                "notify.webhook_url", f"{target.webhook_url!r} is not an http(s) URL"
            )
        return target


def notify(target: NotifyTarget, subject: str, text: str) -> list[str]:
    """Send ``text`` everywhere ``target`` names; returns where it went."""
    sent = []
    if target.sns_topic_arn:
        from flywheel.components.compute.aws import aws_client  # boto3, only when SNS is used

        sns = aws_client("sns", target.region, target.endpoint_url)
        sns.publish(TopicArn=target.sns_topic_arn, Subject=subject[:100], Message=text)
        sent.append(target.sns_topic_arn)
    if target.webhook_url:
        request = urllib.request.Request(
            target.webhook_url,
            data=json.dumps({"text": f"*{subject}*\n{text}"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            response.read()
        sent.append(target.webhook_url)
    return sent
