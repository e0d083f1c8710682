"""Faults the operator must survive without help: hung calls, a busy policy, a failing decision."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from fault_proxy import FaultProxy

from flywheel.operators import handlers
from flywheel.operators.kfp_runs import RunLauncher, connect
from flywheel.operators.kfp_standin import KfpStandIn
from flywheel.operators.policy import parse_policy
from flywheel.operators.poller import CALLS_PER_POLICY, Services, observe, seconds_until_due

NOW = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)


def test_a_hung_kfp_call_fails_after_its_read_timeout(kfp_api: KfpStandIn) -> None:
    with FaultProxy(kfp_api.url) as proxy:
        # urllib3 retries an idempotent GET after a read timeout: every attempt hangs here.
        proxy.inject("GET", r"/runs$", hang=True, times=100)
        launcher = RunLauncher(connect(proxy.url, namespace="default", timeout=(1, 1)))
        started = time.monotonic()
        with pytest.raises(Exception, match=r"(?i)read timed out"):
            launcher.find("churn-0123")
        assert time.monotonic() - started < 10


def test_one_policy_holds_at_most_its_share_of_worker_threads() -> None:
    services = Services(launcher=None, aws_client=None, clock=lambda: NOW)  # type: ignore[arg-type]
    release = threading.Event()
    entered: list[str] = []

    def hang(who: str) -> str:
        entered.append(who)
        release.wait(timeout=10)
        return who

    async def scenario() -> list[str]:
        stuck = [
            asyncio.create_task(services.call("kfp", "hung", hang, "hung"))
            for _ in range(CALLS_PER_POLICY + 1)
        ]
        other = await asyncio.wait_for(services.call("kfp", "other", lambda: "other"), 5)
        seen = [*entered, other]
        release.set()
        await asyncio.gather(*stuck)
        return seen

    try:
        seen = asyncio.run(scenario())
    finally:
        services.close()
    assert seen == ["hung"] * CALLS_PER_POLICY + ["other"]


def test_a_failing_decision_reports_decision_error_and_still_serves_the_manual_trigger(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = handlers.decide

    def decide(policy: Any, status: Any, **kwargs: Any) -> Any:
        if any(t.kind_name != "manual" for t in policy.triggers):
            raise OverflowError("date value out of range")
        return real(policy, status, **kwargs)

    monkeypatch.setattr(handlers, "decide", decide)
    policy = parse_policy(
        {
            "pipeline": {"name": "train"},
            "triggers": [
                {"name": "nightly", "schedule": {"cron": "0 3 * * *"}},
                {"name": "by-hand", "manual": {}},
            ],
        }
    )
    status = {
        "triggers": [{"name": "nightly", "lastScheduleTime": "2026-03-02T03:00:00Z"}],
        "observations": {"pipeline": {"ok": True}},
    }
    decision = handlers.decide_or_report(
        policy,
        status,
        annotations={"flywheel.dev/run-nonce": "please"},
        now=NOW,
        generation=1,
        uid="uid",
        name="churn",
    )
    ready = next(c for c in decision.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "DecisionError")
    assert "OverflowError: date value out of range" in ready["message"]
    assert [e["trigger"] for e in decision.launches] == ["by-hand"]
    assert {t["name"] for t in decision.status["triggers"]} == {"nightly", "by-hand"}
    assert "DecisionError" in [e.reason for e in decision.events]


def test_the_poller_ticks_until_the_spec_has_a_decision_written() -> None:
    # Should the event handler's write be lost (it gave up, it crashed), the next tick is an
    # event of its own, and the handler decides again.
    policy = parse_policy(
        {"pipeline": {"name": "train"}, "triggers": [{"name": "m", "manual": {}}]}
    )
    services = Services(launcher=None, aws_client=None, clock=lambda: NOW)  # type: ignore[arg-type]
    services.pipeline_checks["uid"] = NOW  # the pipeline was just looked up
    status: dict[str, Any] = {"observations": {"pipeline": {"generation": 2, "ok": True}}}

    def poll() -> dict[str, Any]:
        return asyncio.run(observe(policy, status, uid="uid", generation=2, services=services))

    assert "tick" in poll()
    status["observedGeneration"] = 1
    assert "tick" in poll()
    status["observedGeneration"] = 2
    assert poll() == {}


def test_aws_clients_have_short_connect_and_read_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "connect", lambda **_: None)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = handlers.default_services().aws_client("cloudwatch", None)
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (5, 30)


def test_an_idle_policy_sleeps_until_something_is_due() -> None:
    # One task per policy; idle, it must not wake every tick, or 1,000 policies cost a core.
    spec = {
        "pipeline": {"name": "train"},
        "triggers": [
            {"name": "m", "manual": {}},
            {"name": "nightly", "schedule": {"cron": "0 3 * * *"}},
        ],
    }
    policy = parse_policy(spec)
    idle = {
        "observedGeneration": 1,
        "active": [],
        "nextWakeTime": "2026-03-03T03:00:00Z",
        "observations": {"pipeline": {"ok": True}},
    }
    assert seconds_until_due(policy, idle, generation=1, now=NOW, tick=10) == 300  # recheck KFP
    busy = {**idle, "active": [{"runKey": "k", "runId": "r"}]}
    assert seconds_until_due(policy, busy, generation=1, now=NOW, tick=10) == 10
    changed = {**idle, "observedGeneration": 0}
    assert seconds_until_due(policy, changed, generation=1, now=NOW, tick=10) == 10


def test_a_metric_policy_sleeps_until_its_next_period() -> None:
    policy = parse_policy(
        {
            "pipeline": {"name": "train"},
            "triggers": [
                {
                    "name": "drift",
                    "metric": {
                        "cloudWatch": {"namespace": "N", "metricName": "M", "periodSeconds": 60},
                        "comparator": "GreaterThanThreshold",
                        "threshold": 1,
                    },
                }
            ],
        }
    )
    read = {"drift": {"evaluatedAt": "2026-03-02T10:00:00Z", "values": [0.1]}}
    status = {"observedGeneration": 1, "observations": {"pipeline": {"ok": True}, "triggers": read}}
    assert seconds_until_due(policy, status, generation=1, now=NOW, tick=10) == 30
