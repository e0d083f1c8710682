"""Tell people how a run ended: an SNS topic, a Slack-compatible webhook, or both."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flywheel.components.errors import FlywheelError, InvalidSpecError

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


class NotDeliveredError(FlywheelError):
    """A notification its target did not take: one line naming the target and why."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"notify: {target} was not reached: {reason}")
        self.target = target
        self.reason = reason


def notify(target: NotifyTarget, subject: str, text: str) -> list[str]:
    """Send ``text`` everywhere ``target`` names; returns where it went.

    A target that does not take it raises :class:`NotDeliveredError`, after any earlier target
    took it: the step fails in one line, and a retry sends again.
    """
    sent = []
    if target.sns_topic_arn:
        from botocore.exceptions import BotoCoreError, ClientError

        from flywheel.components.compute.aws import aws_client  # boto3, only when SNS is used

        sns = aws_client("sns", target.region, target.endpoint_url)
        try:
            sns.publish(TopicArn=target.sns_topic_arn, Subject=subject[:100], Message=text)
        except (BotoCoreError, ClientError) as error:
            raise NotDeliveredError(target.sns_topic_arn, str(error)) from None
        sent.append(target.sns_topic_arn)
    if target.webhook_url:
        request = urllib.request.Request(
            target.webhook_url,
            data=json.dumps({"text": f"*{subject}*\n{text}"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
                response.read()
        except urllib.error.HTTPError as error:
            raise NotDeliveredError(
                target.webhook_url, f"HTTP {error.code} {error.reason}"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", None) or error
            raise NotDeliveredError(target.webhook_url, str(reason)) from None
        sent.append(target.webhook_url)
    return sent
