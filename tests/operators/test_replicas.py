"""Two operator processes, as the chart deploys them, behind proxies that inject faults.

The Kubernetes emulator and the KFP stand-in run in this process; each replica is a real
``python -m flywheel.operators`` process that reaches them through a :class:`FaultProxy`. The
Lease timings are short here (4 s lease, 3 s renew deadline, 0.5 s retry; in production 15 s,
10 s, 2 s), so that a takeover takes seconds. ``test_replica_faults.py`` freezes and cuts off
replicas.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from operator_harness import (
    Cluster,
    OperatorProcess,
    Replicas,
    aws_client,
    replica_group,
    wait_for,
)

from flywheel.operators.kfp_standin import KfpStandIn

NONCE = "flywheel.dev/run-nonce"
MANUAL = {"name": "by-hand", "manual": {}}
STATUS = r"/retrainpolicies/churn/status$"


@pytest.fixture
def replicas(cluster: Cluster, kfp_api: KfpStandIn, aws: str, tmp_path: Path) -> Iterator[Replicas]:
    with replica_group(cluster, kfp_api.url, aws, tmp_path) as group:
        yield group


def spec(*triggers: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"pipeline": {"name": "train"}, "triggers": list(triggers), **fields}


def trigger_state(cluster: Cluster, name: str, trigger: str) -> dict[str, Any]:
    states = cluster.status(name).get("triggers") or []
    return next((t for t in states if t["name"] == trigger), {})


def launched(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    return [e for e in cluster.status(name).get("active") or [] if e.get("runId")]


def start_pair(cluster: Cluster, replicas: Replicas) -> tuple[OperatorProcess, OperatorProcess]:
    """Start two replicas, the first one first: it takes the Lease, the second stands by."""
    first = replicas.start("replica-a")
    wait_for(lambda: cluster.lease_holder() == "replica-a", timeout=60, what="replica-a to lead")
    second = replicas.start("replica-b")
    wait_for(second.standing_by, timeout=60, what="replica-b to stand by")
    return first, second


def launches_logged(replica: OperatorProcess) -> int:
    return replica.output().count(" Launched: ")


def test_two_replicas_launch_exactly_one_run_per_nonce_through_faults(
    cluster: Cluster, kfp_api: KfpStandIn, replicas: Replicas
) -> None:
    replicas.kfp.inject("POST", r"/runs$", times=3, status=500)
    replicas.kfp.inject("GET", r"/runs$", times=30, delay=0.2)
    replicas.kube.inject("PATCH", STATUS, times=3, status=409, body_contains='"active"')
    replicas.kube.inject("PATCH", STATUS, times=3, status=500, body_contains='"active"')
    first, second = start_pair(cluster, replicas)
    cluster.apply("churn", spec(MANUAL, concurrencyPolicy="Allow"))
    for i in range(20):
        cluster.annotate("churn", NONCE, f"n{i}")
        wait_for(
            lambda i=i: trigger_state(cluster, "churn", "by-hand").get("lastNonce") == f"n{i}",
            timeout=30,
            what=f"nonce n{i} to be taken",
        )
    wait_for(lambda: len(launched(cluster, "churn")) == 20, timeout=30, what="20 launched runs")
    time.sleep(2)  # a second acting replica, or a decision on stale state, would add runs now
    assert len(kfp_api.runs) == 20
    assert len({r["display_name"] for r in kfp_api.runs.values()}) == 20
    assert (launches_logged(first), launches_logged(second)) == (20, 0)


def test_killing_the_active_replica_hands_over_to_the_standby_within_30_seconds(
    cluster: Cluster, kfp_api: KfpStandIn, replicas: Replicas
) -> None:
    active, standby = start_pair(cluster, replicas)
    cluster.apply("churn", spec(MANUAL, concurrencyPolicy="Allow"))
    cluster.annotate("churn", NONCE, "before")
    wait_for(lambda: len(launched(cluster, "churn")) == 1, timeout=30, what="the first run")
    active.kill()
    killed = time.monotonic()
    cluster.annotate("churn", NONCE, "after")
    wait_for(lambda: len(launched(cluster, "churn")) == 2, timeout=30, what="the standby's run")
    assert time.monotonic() - killed < 30
    assert len(kfp_api.runs) == 2
    assert (launches_logged(active), launches_logged(standby)) == (1, 1)


def test_a_slow_kfp_still_gives_one_run_per_breach(
    cluster: Cluster, kfp_api: KfpStandIn, aws: str, replicas: Replicas
) -> None:
    # Every run lookup takes 1.5 s: decisions queue up behind it and see old events.
    replicas.kfp.inject("GET", r"/runs$", times=1000, delay=1.5)
    cloudwatch = aws_client(aws, "cloudwatch")

    def publish(value: float) -> None:
        cloudwatch.put_metric_data(
            Namespace="Flywheel",
            MetricData=[{"MetricName": "RMSE", "Value": value, "Timestamp": datetime.now(tz=UTC)}],
        )

    start_pair(cluster, replicas)
    metric = {
        "name": "drift",
        "metric": {
            "cloudWatch": {
                "namespace": "Flywheel",
                "metricName": "RMSE",
                "statistic": "Maximum",
                "periodSeconds": 1,
            },
            "comparator": "GreaterThanThreshold",
            "threshold": 0.5,
            "evaluationPeriods": 2,
            "datapointsToAlarm": 1,
        },
    }
    cluster.apply("churn", spec(metric, concurrencyPolicy="Allow"))
    wait_for(lambda: cluster.condition("churn", "Ready").get("status") == "True", timeout=60)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # one breach that lasts for many evaluations
        publish(0.9)
        time.sleep(0.5)
    wait_for(lambda: launched(cluster, "churn"), timeout=30, what="the run for the breach")
    assert len(kfp_api.runs) == 1
    assert trigger_state(cluster, "churn", "drift")["state"] == "Disarmed"


def test_a_conflict_on_the_status_write_still_ends_with_one_run(
    cluster: Cluster, kfp_api: KfpStandIn, replicas: Replicas
) -> None:
    # The decision's write (the run key into status.active) is refused twice with 409, and
    # nothing else changes on a manual-only policy: only the handler's own retry can save it.
    replicas.kube.inject("PATCH", STATUS, times=2, status=409, body_contains='"active"')
    start_pair(cluster, replicas)
    cluster.apply("churn", spec(MANUAL))
    wait_for(lambda: cluster.condition("churn", "Ready").get("status") == "True", timeout=60)
    cluster.annotate("churn", NONCE, "once")
    wait_for(lambda: launched(cluster, "churn"), timeout=30, what="the run")
    time.sleep(1)
    assert len(kfp_api.runs) == 1
    assert cluster.status("churn")["counters"]["launched"] == 1


def run_main(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flywheel.operators", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_standalone_is_refused_where_the_deployment_runs_two_replicas() -> None:
    done = run_main("--standalone", env={"FLYWHEEL_REPLICAS": "2"})
    assert done.returncode == 2
    assert "--standalone: FLYWHEEL_REPLICAS=2" in done.stderr


def test_a_renew_deadline_not_shorter_than_the_lease_is_refused_at_start() -> None:
    # A leader must stop before its lease can pass to another replica: renew < lease.
    env = {"FLYWHEEL_LEASE_DURATION_SECONDS": "10", "FLYWHEEL_LEASE_RENEW_DEADLINE_SECONDS": "10"}
    done = run_main(env=env)
    assert done.returncode == 2
    assert "retry period < renew deadline < lease duration" in done.stderr
