"""kopf running for real against the emulator, the KFP stand-in and moto."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from operator_harness import NAMESPACE, Cluster, OperatorThread, aws_client, wait_for

from flywheel.operators.kfp_standin import KfpStandIn
from flywheel.operators.policy import GROUP, PLURAL, VERSION

NONCE = "flywheel.dev/run-nonce"
MANUAL = {"name": "by-hand", "manual": {}}


def spec(*triggers: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "pipeline": {"name": "train", "parameters": {"reason": "{{ reason }}"}},
        "triggers": list(triggers),
        **fields,
    }


def launched(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    return [e for e in cluster.status(name).get("active", []) if e.get("runId")]


def evaluations(cluster: Cluster, name: str, trigger: str) -> str | None:
    state = next((t for t in cluster.status(name).get("triggers", []) if t["name"] == trigger), {})
    return state.get("lastEvaluationTime")


def wait_for_ready(cluster: Cluster, name: str) -> None:
    wait_for(lambda: cluster.condition(name, "Ready").get("status") == "True", what="Ready")


def test_a_manual_nonce_launches_exactly_one_run(
    cluster: Cluster, kfp_api: KfpStandIn, start_operator: Callable[[], OperatorThread]
) -> None:
    start_operator()
    cluster.apply("churn", spec(MANUAL))
    wait_for_ready(cluster, "churn")
    cluster.annotate("churn", NONCE, "first")
    active = wait_for(lambda: launched(cluster, "churn"), what="a launched run")
    wait_for(lambda: "Launched" in cluster.event_reasons("churn"), what="a Launched event")
    assert len(kfp_api.runs) == 1
    (run,) = kfp_api.runs.values()
    assert run["display_name"] == active[0]["runName"]
    assert run["runtime_config"]["parameters"] == {"reason": "manual nonce first"}


def test_a_metric_crossing_its_threshold_launches_exactly_one_run(
    cluster: Cluster, kfp_api: KfpStandIn, aws: str, start_operator: Callable[[], OperatorThread]
) -> None:
    cloudwatch = aws_client(aws, "cloudwatch")

    def publish(value: float) -> None:
        cloudwatch.put_metric_data(
            Namespace="Flywheel",
            MetricData=[
                {
                    "MetricName": "RMSE",
                    "Value": value,
                    "Timestamp": datetime.now(tz=UTC),
                    "Dimensions": [{"Name": "Model", "Value": "churn"}],
                }
            ],
        )

    publish(0.1)
    start_operator()
    metric = {
        "name": "drift",
        "metric": {
            "cloudWatch": {
                "namespace": "Flywheel",
                "metricName": "RMSE",
                "statistic": "Maximum",
                "dimensions": {"Model": "churn"},
                "periodSeconds": 1,
            },
            "comparator": "GreaterThanThreshold",
            "threshold": 0.5,
            "evaluationPeriods": 3,
            "datapointsToAlarm": 1,
        },
    }
    cluster.apply("churn", spec(metric))
    wait_for(
        lambda: next(iter(cluster.status("churn").get("triggers", [])), {}).get("lastValue") == 0.1,
        what="the quiet metric to be observed",
    )
    assert kfp_api.runs == {}
    publish(0.9)
    wait_for(lambda: launched(cluster, "churn"), what="a run for the breach")
    # Still in breach for a few more evaluations: the edge fired once, hysteresis holds.
    first = evaluations(cluster, "churn", "drift")
    wait_for(lambda: evaluations(cluster, "churn", "drift") > first, what="another evaluation")
    assert len(kfp_api.runs) == 1
    state = cluster.status("churn")["triggers"][0]
    assert (state["state"], state["lastValue"]) == ("Disarmed", 0.9)


def test_new_s3_objects_launch_one_run_and_advance_the_watermark(
    cluster: Cluster, kfp_api: KfpStandIn, aws: str, start_operator: Callable[[], OperatorThread]
) -> None:
    s3 = aws_client(aws, "s3")
    s3.create_bucket(Bucket="lake")
    s3.put_object(Bucket="lake", Key="in/2026-03-01.csv", Body=b"a,b\n")
    start_operator()
    arrival = {
        "name": "new-data",
        "dataArrival": {
            "bucket": "lake",
            "prefix": "in/",
            "minNewObjects": 2,
            "pollIntervalSeconds": 1,
        },
    }
    cluster.apply("churn", spec(arrival))
    wait_for(
        lambda: next(iter(cluster.status("churn").get("triggers", [])), {}).get("lastValue") == 1,
        what="one new object to be counted",
    )
    s3.put_object(Bucket="lake", Key="in/2026-03-02.csv", Body=b"c,d\n")
    wait_for(lambda: launched(cluster, "churn"), what="a run for the new data")
    first = evaluations(cluster, "churn", "new-data")
    wait_for(lambda: evaluations(cluster, "churn", "new-data") > first, what="another listing")
    assert len(kfp_api.runs) == 1
    assert cluster.status("churn")["triggers"][0]["watermark"] == "in/2026-03-02.csv"


def test_forbid_skips_while_a_run_is_active(
    cluster: Cluster, kfp_api: KfpStandIn, start_operator: Callable[[], OperatorThread]
) -> None:
    start_operator()
    cluster.apply("churn", spec(MANUAL, concurrencyPolicy="Forbid"))
    wait_for_ready(cluster, "churn")
    cluster.annotate("churn", NONCE, "one")
    wait_for(lambda: launched(cluster, "churn"), what="the first run")
    cluster.annotate("churn", NONCE, "two")
    wait_for(
        lambda: cluster.status("churn").get("counters", {}).get("skipped") == 1,
        what="the second firing to be skipped",
    )
    wait_for(lambda: "Skipped" in cluster.event_reasons("churn"), what="a Skipped event")
    assert len(kfp_api.runs) == 1


def test_a_restart_after_a_crash_between_deciding_and_recording_creates_no_duplicate(
    cluster: Cluster, kfp_api: KfpStandIn, start_operator: Callable[[], OperatorThread]
) -> None:
    # KFP stores the run but the answer never arrives, as if the operator died right after
    # sending it: status holds the run key, not the run id.
    kfp_api.crash_after_next_create = kfp_api.down_after_crash = True
    first = start_operator()
    cluster.apply("churn", spec(MANUAL))
    wait_for_ready(cluster, "churn")
    cluster.annotate("churn", NONCE, "once")
    wait_for(lambda: kfp_api.create_calls == 1, what="the create call")
    first.stop()
    (pending,) = cluster.status("churn")["active"]
    assert "runId" not in pending

    kfp_api.down = False
    start_operator()
    (entry,) = wait_for(lambda: launched(cluster, "churn"), what="the run to be adopted")
    (run,) = kfp_api.runs.values()
    assert entry["runId"] == run["run_id"]
    assert kfp_api.create_calls == 1
    assert len(kfp_api.runs_named(pending["runName"])) == 1


def test_a_pipeline_that_does_not_exist_is_not_ready_and_never_fires(
    cluster: Cluster, kfp_api: KfpStandIn, start_operator: Callable[[], OperatorThread]
) -> None:
    start_operator()
    cluster.apply(
        "churn",
        {"pipeline": {"name": "no-such-pipeline"}, "triggers": [MANUAL]},
        annotations={NONCE: "please"},
    )
    ready = wait_for(
        lambda: (
            cluster.condition("churn", "Ready").get("status") == "False"
            and cluster.condition("churn", "Ready")
        ),
        what="Ready=False",
    )
    assert ready["reason"] == "PipelineNotFound"
    assert kfp_api.create_calls == 0


def test_a_spec_the_schema_cannot_judge_is_not_ready_naming_the_field(
    cluster: Cluster, kfp_api: KfpStandIn, start_operator: Callable[[], OperatorThread]
) -> None:
    start_operator()
    mars = {"name": "nightly", "schedule": {"cron": "0 3 * * *", "timeZone": "Mars/Olympus_Mons"}}
    cluster.apply("churn", spec(mars, MANUAL), annotations={NONCE: "please"})
    ready = wait_for(
        lambda: (
            cluster.condition("churn", "Ready").get("reason") == "InvalidSpec"
            and cluster.condition("churn", "Ready")
        ),
        what="Ready=False",
    )
    assert ready["status"] == "False"
    assert "spec.triggers[0].schedule.timeZone" in ready["message"]
    assert kfp_api.create_calls == 0


@pytest.mark.parametrize(("policy", "left"), [("Terminate", "CANCELED"), ("Orphan", "RUNNING")])
def test_deleting_a_policy_applies_its_deletion_policy_to_the_active_run(
    cluster: Cluster,
    kfp_api: KfpStandIn,
    start_operator: Callable[[], OperatorThread],
    policy: str,
    left: str,
) -> None:
    start_operator()
    cluster.apply("churn", spec(MANUAL, deletionPolicy=policy))
    wait_for_ready(cluster, "churn")
    cluster.annotate("churn", NONCE, "first")
    (entry,) = wait_for(lambda: launched(cluster, "churn"), what="a launched run")
    cluster.api.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "churn")
    wait_for(lambda: "churn" not in names(cluster), what="the policy to be gone")
    assert kfp_api.runs[entry["runId"]]["state"] == left
    assert len(kfp_api.runs) == 1


def names(cluster: Cluster) -> set[str]:
    listed = cluster.api.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
    return {item["metadata"]["name"] for item in listed["items"]}


def test_replace_terminates_the_replaced_run_even_when_terminate_fails_at_first(
    cluster: Cluster, kfp_api: KfpStandIn, start_operator: Callable[[], OperatorThread]
) -> None:
    start_operator()
    cluster.apply("churn", spec(MANUAL, concurrencyPolicy="Replace"))
    wait_for_ready(cluster, "churn")
    cluster.annotate("churn", NONCE, "first")
    (first,) = wait_for(lambda: launched(cluster, "churn"), what="the first run")
    kfp_api.refuse_terminates = 2
    cluster.annotate("churn", NONCE, "second")
    wait_for(
        lambda: kfp_api.runs[first["runId"]]["state"] == "CANCELED",
        what="the replaced run to be terminated",
    )
    assert kfp_api.refuse_terminates == 0
    wait_for(
        lambda: (
            [e["runId"] for e in cluster.status("churn")["active"]] != [first["runId"]]
            and len(cluster.status("churn")["active"]) == 1
        ),
        what="the replacing run, alone in status",
    )
    (entry,) = cluster.status("churn")["active"]
    assert entry["runId"] != first["runId"] and kfp_api.runs[entry["runId"]]["state"] == "RUNNING"
    assert len(kfp_api.runs) == 2
    assert "TerminateFailed" in cluster.event_reasons("churn")
