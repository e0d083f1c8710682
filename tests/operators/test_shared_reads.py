"""Policies due together on the same source share one read (moto on 127.0.0.1, strict botocore).

Calls are counted on botocore's event system, so what is counted is what went out.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from operator_harness import aws_client

from flywheel.operators.batching import Coalescer
from flywheel.operators.policy import CloudWatchSource, DataArrival, parse_policy
from flywheel.operators.poller import Services, observe
from flywheel.operators.sources import (
    SourceUnreadable,
    Window,
    list_new_objects_many,
    read_cloudwatch_many,
)

NOW = datetime.now(tz=UTC).replace(second=30, microsecond=0)


def calls_of(client: Any, operation: str) -> list[dict[str, Any]]:
    """The parameters of every ``operation`` call the client makes from now on."""
    calls: list[dict[str, Any]] = []
    service = client.meta.service_model.service_name
    client.meta.events.register(
        f"provide-client-params.{service}.{operation}",
        lambda params, **_: calls.append(dict(params)),
    )
    return calls


def rmse(model: str) -> CloudWatchSource:
    return CloudWatchSource(
        namespace="Flywheel",
        metric_name="RMSE",
        dimensions={"Model": model},
        statistic="Maximum",
        period_seconds=60,
        region=None,
    )


def publish(cloudwatch: Any, values: dict[str, float]) -> None:
    cloudwatch.put_metric_data(
        Namespace="Flywheel",
        MetricData=[
            {
                "MetricName": "RMSE",
                "Value": value,
                "Timestamp": NOW - timedelta(minutes=1),
                "Dimensions": [{"Name": "Model", "Value": model}],
            }
            for model, value in values.items()
        ],
    )


def metric_policy(model: str) -> Any:
    return parse_policy(
        {
            "pipeline": {"name": "train"},
            "triggers": [
                {
                    "name": "drift",
                    "metric": {
                        "cloudWatch": {
                            "namespace": "Flywheel",
                            "metricName": "RMSE",
                            "statistic": "Maximum",
                            "dimensions": {"Model": model},
                            "periodSeconds": 60,
                        },
                        "comparator": "GreaterThanThreshold",
                        "threshold": 0.5,
                        "evaluationPeriods": 2,
                    },
                }
            ],
        }
    )


def test_policies_due_together_make_one_get_metric_data_call_per_500_queries(aws: str) -> None:
    cloudwatch = aws_client(aws, "cloudwatch")
    publish(cloudwatch, {"m0": 0.1, "m1": 0.2, "m500": 0.9})
    calls = calls_of(cloudwatch, "GetMetricData")
    services = Services(launcher=None, aws_client=lambda *_: cloudwatch, clock=lambda: NOW)  # type: ignore[arg-type]
    status = {"observedGeneration": 1, "observations": {"pipeline": {"generation": 1, "ok": True}}}
    models = [f"m{i}" for i in range(501)]
    for model in models:
        services.pipeline_checks[model] = NOW  # the pipeline was just looked up

    async def poll_all() -> list[dict[str, Any]]:
        return await asyncio.gather(
            *(
                observe(metric_policy(m), status, uid=m, generation=1, services=services)
                for m in models
            )
        )

    try:
        patches = dict(zip(models, asyncio.run(poll_all()), strict=True))
    finally:
        services.close()
    assert sorted(len(call["MetricDataQueries"]) for call in calls) == [1, 500]
    ids = [q["Id"] for call in calls for q in call["MetricDataQueries"]]
    assert len(set(ids)) == 501 and all(re.fullmatch("[a-z][a-zA-Z0-9_]*", i) for i in ids)
    values = {m: patches[m]["triggers"]["drift"]["values"] for m in models}
    assert (values["m0"], values["m1"], values["m500"], values["m7"]) == (
        [None, 0.1],
        [None, 0.2],
        [None, 0.9],
        [None, None],
    )


def test_identical_metric_reads_share_one_query_and_each_gets_its_window(aws: str) -> None:
    cloudwatch = aws_client(aws, "cloudwatch")
    publish(cloudwatch, {"churn": 0.7})
    calls = calls_of(cloudwatch, "GetMetricData")
    results = read_cloudwatch_many(
        cloudwatch, [(rmse("churn"), 2, NOW), (rmse("churn"), 3, NOW), (rmse("churn"), 2, NOW)]
    )
    assert results == [
        Window([None, 0.7], results[0].times),  # type: ignore[union-attr]
        Window([None, None, 0.7], results[1].times),  # type: ignore[union-attr]
        results[0],
    ]
    # Two windows, two calls; the two reads of the same window send one query.
    assert sorted(len(call["MetricDataQueries"]) for call in calls) == [1, 1]


def test_a_failed_query_fails_only_the_policies_that_read_it(aws: str) -> None:
    cloudwatch = aws_client(aws, "cloudwatch")
    publish(cloudwatch, {"ok": 0.3})
    calls = calls_of(cloudwatch, "GetMetricData")

    def forbid_denied(parsed: dict[str, Any], **_: Any) -> None:
        # What CloudWatch answers for one query whose metric the caller may not read.
        denied = next(
            q["Id"]
            for q in calls[-1]["MetricDataQueries"]
            if q["MetricStat"]["Metric"]["Dimensions"][0]["Value"] == "denied"
        )
        for result in parsed["MetricDataResults"]:
            if result["Id"] == denied:
                result.update(
                    StatusCode="Forbidden",
                    Timestamps=[],
                    Values=[],
                    Messages=[{"Code": "Forbidden", "Value": "not authorized"}],
                )

    cloudwatch.meta.events.register("after-call.cloudwatch.GetMetricData", forbid_denied)
    ok, denied = read_cloudwatch_many(cloudwatch, [(rmse("ok"), 2, NOW), (rmse("denied"), 2, NOW)])
    assert len(calls) == 1
    assert isinstance(ok, Window) and ok.values == [None, 0.3]
    assert isinstance(denied, SourceUnreadable)
    assert (denied.reason, denied.message) == ("Forbidden", "not authorized")


def arrival(settle_seconds: int = 0) -> DataArrival:
    return DataArrival(
        bucket="lake",
        prefix="in/",
        min_new_objects=1,
        min_new_bytes=0,
        settle_seconds=settle_seconds,
        poll_interval_seconds=60,
        region=None,
    )


def test_s3_policies_on_one_prefix_share_one_listing_each_from_its_own_watermark(
    aws: str,
) -> None:
    s3 = aws_client(aws, "s3")
    s3.create_bucket(Bucket="lake")
    for key in ["in/a", "in/b", "in/c"]:
        s3.put_object(Bucket="lake", Key=key, Body=b"12345")
    calls = calls_of(s3, "ListObjectsV2")
    now = datetime.now(tz=UTC) + timedelta(seconds=5)
    found = list_new_objects_many(
        s3, [(arrival(), "", now), (arrival(), "in/a", now), (arrival(), "in/c", now)]
    )
    assert len(calls) == 1
    assert [(f.since, f.new_objects, f.new_bytes, f.max_key) for f in found] == [  # type: ignore[union-attr]
        ("", 3, 15, "in/c"),
        ("in/a", 2, 10, "in/c"),
        ("in/c", 0, 0, "in/c"),
    ]


def test_a_policy_past_a_listing_cut_short_lists_on_its_own(aws: str) -> None:
    s3 = aws_client(aws, "s3")
    s3.create_bucket(Bucket="lake")
    s3.put_object(Bucket="lake", Key="in/z", Body=b"x")
    time.sleep(1.2)
    # Not settled: the shared listing stops here, before "in/z".
    s3.put_object(Bucket="lake", Key="in/m", Body=b"x")
    calls = calls_of(s3, "ListObjectsV2")
    now = datetime.now(tz=UTC)
    behind, ahead = list_new_objects_many(s3, [(arrival(1), "", now), (arrival(1), "in/n", now)])
    assert (behind.new_objects, behind.max_key) == (0, "")  # type: ignore[union-attr]
    assert (ahead.new_objects, ahead.max_key) == (1, "in/z")  # type: ignore[union-attr]
    assert [call.get("StartAfter") for call in calls] == [None, "in/n"]


def test_a_missing_bucket_fails_every_policy_that_lists_it(aws: str) -> None:
    s3 = aws_client(aws, "s3")
    now = datetime.now(tz=UTC)
    found = list_new_objects_many(s3, [(arrival(), "", now), (arrival(), "in/a", now)])
    assert [getattr(f, "reason", None) for f in found] == ["NoSuchBucket", "NoSuchBucket"]


def test_reads_of_one_key_within_the_window_share_one_batch_and_later_ones_the_next() -> None:
    batches: list[list[int]] = []

    async def reader(items: list[int]) -> list[Any]:
        batches.append(items)
        return [ValueError("odd") if i % 2 else i * 10 for i in items]

    async def scenario() -> tuple[list[Any], Any]:
        coalescer = Coalescer(0.05)
        together = await asyncio.gather(
            *(coalescer.read("k", i, reader) for i in range(3)), return_exceptions=True
        )
        return together, await coalescer.read("k", 4, reader)

    together, later = asyncio.run(scenario())
    assert batches == [[0, 1, 2], [4]]
    assert [r if isinstance(r, int) else repr(r) for r in together] == [0, "ValueError('odd')", 20]
    assert later == 40
