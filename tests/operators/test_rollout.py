"""The pure rollout decision, with plain values: what launches, when, and what status says."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from test_modeldeployment_crd import SAMPLE

from flywheel.operators.deployment_spec import parse_deployment
from flywheel.operators.rollout import decide_rollout, rollout_name

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn-model/{}"
DEPLOYMENT = parse_deployment(yaml.safe_load(SAMPLE.read_text())["spec"])  # staging, prod@3


def observed(**stages: dict[str, Any]) -> dict[str, Any]:
    return {"observations": {"stages": stages}}


def target(version: int) -> dict[str, Any]:
    return {"ok": True, "version": version, "arn": ARN.format(version)}


def serving(version: int | None) -> dict[str, Any]:
    return {} if version is None else {"status": "InService", "servedVersion": version}


def decide(status: dict[str, Any], now: datetime = NOW, annotations: dict[str, str] | None = None):
    return decide_rollout(
        DEPLOYMENT,
        status,
        annotations=annotations or {},
        now=now,
        generation=1,
        uid="uid-1",
        name="churn-model",
    )


def stage(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in status["stages"] if s["name"] == name)


def with_observations(status: dict[str, Any], **stages: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(status)
    new["observations"] = {"stages": stages}
    return new


def test_a_new_approved_version_is_decided_once_with_a_deterministic_run_name() -> None:
    first = decide(observed(staging={"target": target(2), "endpoint": serving(1)}))
    (launch,) = first.launches
    assert launch["stage"] == "staging" and launch["version"] == 2
    assert launch["runName"] == rollout_name("churn-model", "staging", launch["runKey"])
    assert stage(first.status, "staging")["state"] == "Deploying"
    # Deciding again on the status with the rollout recorded launches nothing more.
    again = decide(
        with_observations(first.status, staging={"target": target(2), "endpoint": serving(1)})
    )
    assert again.launches == []
    # The same decision made by another replica from the same status names the same run.
    assert decide(observed(staging={"target": target(2), "endpoint": serving(1)})).launches == [
        launch
    ]


def _rolled(state: str, served_after: int | None) -> dict[str, Any]:
    first = decide(observed(staging={"target": target(2), "endpoint": serving(1)}))
    key = first.launches[0]["runKey"]
    stage(first.status, "staging")["rollout"]["runId"] = "run-1"
    ended = with_observations(
        first.status,
        staging={
            "target": target(2),
            "endpoint": serving(served_after),
            "runs": {key: {"state": state}},
        },
    )
    return decide(ended).status


def test_a_rolled_back_update_is_reported_and_not_retried() -> None:
    status = _rolled("FAILED", served_after=1)
    staging = stage(status, "staging")
    assert (staging["state"], staging["servedVersion"], staging["blocked"]["version"]) == (
        "RolledBack",
        1,
        2,
    )
    rolled = next(c for c in status["conditions"] if c["type"] == "RolledBack")
    assert rolled["status"] == "True" and "staging" in rolled["message"]
    later = decide(with_observations(status, staging={"target": target(2), "endpoint": serving(1)}))
    assert later.launches == [] and stage(later.status, "staging")["state"] == "RolledBack"
    # A newer approved version moves the target on: that one deploys.
    newer = decide(with_observations(status, staging={"target": target(3), "endpoint": serving(1)}))
    assert [launch["version"] for launch in newer.launches] == [3]


def test_a_deploy_that_left_no_endpoint_is_failed_not_rolled_back() -> None:
    staging = stage(_rolled("FAILED", served_after=None), "staging")
    assert staging["state"] == "Failed" and staging["blocked"]["reason"] == "Failed"


def test_a_succeeded_run_with_the_version_serving_is_deployed_and_remembered() -> None:
    staging = stage(_rolled("SUCCEEDED", served_after=2), "staging")
    assert (staging["state"], staging["deployedVersion"], staging["history"]) == (
        "Deployed",
        2,
        [2],
    )


def _staging_deployed(version: int, at: datetime) -> dict[str, Any]:
    status = decide(
        observed(staging={"target": target(version), "endpoint": serving(version)}), now=at
    ).status
    assert stage(status, "staging")["state"] == "Deployed"
    return status


def test_prod_waits_for_staging_the_soak_the_alarms_and_the_approval() -> None:
    alarm_ok = {"ok": True, "message": "all soak alarms OK"}
    prod_obs = {"target": target(3), "endpoint": serving(1), "alarms": alarm_ok}
    waiting = decide(observed(staging={"target": target(2), "endpoint": serving(2)}, prod=prod_obs))
    assert stage(waiting.status, "prod")["reason"] == "AwaitingPromotion"
    status = _staging_deployed(3, NOW)
    soaking = decide(
        with_observations(
            status, staging={"target": target(3), "endpoint": serving(3)}, prod=prod_obs
        )
    )
    assert stage(soaking.status, "prod")["reason"] == "Soaking"  # the sample soaks 30 minutes
    later = NOW + timedelta(minutes=31)
    firing = {**prod_obs, "alarms": {"ok": False, "message": "in ALARM: churn-model-staging-5xx"}}
    alarmed = decide(
        with_observations(
            status, staging={"target": target(3), "endpoint": serving(3)}, prod=firing
        ),
        now=later,
    )
    assert stage(alarmed.status, "prod")["message"] == "in ALARM: churn-model-staging-5xx"
    obs = with_observations(
        status, staging={"target": target(3), "endpoint": serving(3)}, prod=prod_obs
    )
    unapproved = decide(obs, now=later, annotations={"flywheel.dev/approve.prod": "2"})
    assert (
        stage(unapproved.status, "prod")["state"] == "AwaitingApproval" and not unapproved.launches
    )
    approved = decide(obs, now=later, annotations={"flywheel.dev/approve.prod": "3"})
    assert [(launch["stage"], launch["version"]) for launch in approved.launches] == [("prod", 3)]


def test_a_revert_to_a_version_the_stage_served_skips_the_promotion_gates() -> None:
    status = _staging_deployed(3, NOW)
    stage(status, "staging")  # staging serves 3; prod served 1 before and now serves 3
    status["stages"].append({"name": "prod", "history": [1, 3], "servedVersion": 3, "rollouts": 2})
    reverted = decide(
        with_observations(
            status,
            staging={"target": target(3), "endpoint": serving(3)},
            prod={"target": target(1), "endpoint": serving(3)},
        )
    )
    (launch,) = reverted.launches
    assert (launch["stage"], launch["version"], launch["fromVersion"]) == ("prod", 1, 3)
    assert stage(reverted.status, "prod")["rollouts"] == 3


def test_a_pinned_version_missing_from_the_registry_fails_the_stage_naming_it() -> None:
    missing = {
        "ok": False,
        "reason": "VersionNotFound",
        "message": "spec.stages[1].version: churn-model has no version 3 (versions: 1, 2)",
    }
    decision = decide(
        observed(staging={"target": target(2), "endpoint": serving(2)}, prod={"target": missing})
    )
    prod = stage(decision.status, "prod")
    assert (prod["state"], prod["reason"]) == (
        "Failed",
        "VersionNotFound",
    ) and not decision.launches
    assert decision.status["summary"] == "staging=2 (Deployed), prod=- (Failed)"
