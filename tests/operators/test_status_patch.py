"""Status writes: only what changed (or the handler would wake itself forever), and only onto
the version it was made from (or a stale replica would overwrite newer state)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from operator_harness import NAMESPACE, Cluster

from flywheel.operators.decision import Decision, decide
from flywheel.operators.handlers import status_changes
from flywheel.operators.kube import Conflict, PolicyStore
from flywheel.operators.policy import parse_policy


def test_unchanged_status_patches_nothing() -> None:
    status = {"activeCount": 0, "counters": {"launched": 1}}
    assert status_changes(status, dict(status)) == {}


def test_a_null_the_api_server_already_dropped_is_not_patched_again() -> None:
    assert status_changes({"activeCount": 0}, {"activeCount": 0, "queued": None}) == {}


def test_changed_and_removed_fields_are_patched_but_observations_are_left_alone() -> None:
    old = {"activeCount": 1, "queued": {"trigger": "t"}, "observations": {"tick": "x"}}
    new = {"activeCount": 0}
    assert status_changes(old, new) == {"activeCount": 0, "queued": None}


# -- observations: a stale replica's write is refused -----------------------------------------

METRIC = {
    "name": "drift",
    "metric": {
        "cloudWatch": {"namespace": "Flywheel", "metricName": "RMSE", "periodSeconds": 60},
        "comparator": "GreaterThanThreshold",
        "threshold": 0.5,
        "evaluationPeriods": 3,
        "datapointsToAlarm": 2,
    },
}
SPEC = {"pipeline": {"name": "train"}, "triggers": [METRIC], "concurrencyPolicy": "Allow"}
NOW = datetime(2026, 3, 2, 10, 2, 30, tzinfo=UTC)


def window(*values: float, at: str) -> dict[str, Any]:
    """A reading at ``at`` of one-minute datapoints, as the poller writes it."""
    end = datetime.fromisoformat(at)
    times = [
        (end - timedelta(minutes=len(values) - 1 - i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for i in range(len(values))
    ]
    return {"triggers": {"drift": {"values": list(values), "times": times, "evaluatedAt": at}}}


def decided(status: dict[str, Any]) -> Decision:
    return decide(
        parse_policy(SPEC),
        status,
        annotations={},
        now=NOW,
        generation=1,
        uid="uid",
        name="churn",
    )


def drift_state(decision: Decision) -> str:
    return next(t["state"] for t in decision.status["triggers"] if t["name"] == "drift")


def test_a_stale_observation_write_is_refused_and_does_not_rearm_a_fired_trigger(
    cluster: Cluster,
) -> None:
    store = PolicyStore(cluster.api)
    # Both replicas read the policy at this version; one of them then freezes mid-observation,
    # holding a window from before the breach.
    read = cluster.apply("churn", SPEC)["metadata"]["resourceVersion"]
    quiet = window(0.1, 0.2, 0.3, at="2026-03-02T10:00:00Z")
    # The other (the new leader) writes the breach, decides on it, and the trigger fires.
    breach = {"pipeline": {"ok": True}, **window(0.2, 0.7, 0.9, at="2026-03-02T10:02:00Z")}
    stored = store.patch_observations(NAMESPACE, "churn", read, breach)
    assert stored is not None
    fired = decided(stored["status"])
    assert len(fired.launches) == 1 and drift_state(fired) == "Disarmed"
    changes = status_changes(stored["status"], fired.status)
    store.patch_status(NAMESPACE, "churn", stored["metadata"]["resourceVersion"], changes)

    # The frozen replica resumes and writes its old window onto the version it read: refused.
    with pytest.raises(Conflict):
        store.patch_observations(NAMESPACE, "churn", read, quiet)

    status = cluster.status("churn")
    assert status["observations"]["triggers"] == breach["triggers"]
    again = decided(status)
    assert again.launches == [] and drift_state(again) == "Disarmed"
    # Had it landed, the old window would read as a recovery and re-arm the trigger, and the
    # breach, seen again, would fire a second run.
    overwritten = {**status, "observations": {"pipeline": {"ok": True}, **quiet}}
    assert drift_state(decided(overwritten)) == "Armed"
