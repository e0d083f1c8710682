"""botocore's retries: adaptive, ten attempts a call, unless the AWS SDKs' own settings say otherwise."""

from __future__ import annotations

import pytest

from flywheel.components.compute import aws


def test_retries_default_to_adaptive_mode_and_ten_attempts(monkeypatch):
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)

    assert aws._retries().retries == {"mode": "adaptive", "max_attempts": 10}


def test_retries_follow_aws_retry_mode_and_aws_max_attempts(monkeypatch):
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")

    assert aws._retries().retries == {"mode": "standard", "max_attempts": 3}


@pytest.mark.parametrize(("mode", "attempts"), [("fast", "0"), ("", "ten"), ("ADAPTIVE", "-1")])
def test_values_botocore_would_refuse_leave_the_defaults(monkeypatch, mode, attempts):
    monkeypatch.setenv("AWS_RETRY_MODE", mode)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", attempts)

    assert aws._retries().retries == {"mode": "adaptive", "max_attempts": 10}
