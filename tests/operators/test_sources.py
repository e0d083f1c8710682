"""Source readers against moto (CloudWatch, S3) and a Prometheus API stand-in on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from operator_harness import aws_client

from flywheel.operators.policy import CloudWatchSource, DataArrival, PrometheusSource
from flywheel.operators.sources import (
    SourceUnreadable,
    list_new_objects_many,
    read_cloudwatch_many,
    read_prometheus,
)


def only(results: list) -> Any:
    """The one result of a one-read batch, or its ``SourceUnreadable`` raised."""
    (result,) = results
    if isinstance(result, SourceUnreadable):
        raise result
    return result


RMSE = CloudWatchSource(
    namespace="Flywheel",
    metric_name="RMSE",
    dimensions={"Model": "churn"},
    statistic="Maximum",
    period_seconds=60,
    region=None,
)


def arrival(**fields: Any) -> DataArrival:
    defaults: dict[str, Any] = {
        "bucket": "lake",
        "prefix": "in/",
        "min_new_objects": 1,
        "min_new_bytes": 0,
        "settle_seconds": 0,
        "poll_interval_seconds": 60,
        "region": None,
    }
    return DataArrival(**{**defaults, **fields})


def test_cloudwatch_datapoints_land_in_their_periods_oldest_first(aws: str) -> None:
    cloudwatch = aws_client(aws, "cloudwatch")
    now = datetime.now(tz=UTC).replace(second=30, microsecond=0)
    for minutes_ago, value in [(2, 0.2), (0, 0.9)]:
        cloudwatch.put_metric_data(
            Namespace="Flywheel",
            MetricData=[
                {
                    "MetricName": "RMSE",
                    "Value": value,
                    "Timestamp": now - timedelta(minutes=minutes_ago),
                    "Dimensions": [{"Name": "Model", "Value": "churn"}],
                }
            ],
        )
    window = only(read_cloudwatch_many(cloudwatch, [(RMSE, 3, now)]))
    assert window.values == [0.2, None, 0.9]
    minute = now.replace(second=0)
    assert window.times == [
        (minute - timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ") for m in (2, 1, 0)
    ]


def test_cloudwatch_without_a_current_datapoint_evaluates_complete_periods(aws: str) -> None:
    cloudwatch = aws_client(aws, "cloudwatch")
    now = datetime.now(tz=UTC).replace(second=30, microsecond=0)
    cloudwatch.put_metric_data(
        Namespace="Flywheel",
        MetricData=[
            {
                "MetricName": "RMSE",
                "Value": 0.7,
                "Timestamp": now - timedelta(minutes=1),
                "Dimensions": [{"Name": "Model", "Value": "churn"}],
            }
        ],
    )
    assert only(read_cloudwatch_many(cloudwatch, [(RMSE, 2, now)])).values == [None, 0.7]


def test_s3_counts_objects_after_the_watermark_once(aws: str) -> None:
    s3 = aws_client(aws, "s3")
    s3.create_bucket(Bucket="lake")
    for key in ["in/a", "in/b", "in/c", "other/z"]:
        s3.put_object(Bucket="lake", Key=key, Body=b"12345")
    now = datetime.now(tz=UTC) + timedelta(seconds=5)
    first = only(list_new_objects_many(s3, [(arrival(), "", now)]))
    assert (first.new_objects, first.new_bytes, first.max_key) == (3, 15, "in/c")
    later = only(list_new_objects_many(s3, [(arrival(), first.max_key, now)]))
    assert (later.new_objects, later.max_key) == (0, "in/c")


def test_s3_stops_counting_at_an_object_that_has_not_settled(aws: str) -> None:
    s3 = aws_client(aws, "s3")
    s3.create_bucket(Bucket="lake")
    s3.put_object(Bucket="lake", Key="in/a", Body=b"x")
    s3.put_object(Bucket="lake", Key="in/b", Body=b"x")
    found = only(
        list_new_objects_many(s3, [(arrival(settle_seconds=3600), "", datetime.now(tz=UTC))])
    )
    assert (found.new_objects, found.max_key) == (0, "")


def test_a_missing_bucket_is_a_source_error_not_a_firing(aws: str) -> None:
    with pytest.raises(SourceUnreadable) as raised:
        s3 = aws_client(aws, "s3")
        only(list_new_objects_many(s3, [(arrival(bucket="absent"), "", datetime.now(tz=UTC))]))
    assert raised.value.reason == "NoSuchBucket"


class _Prometheus(BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, dict[str, Any]]] = {}

    def do_GET(self) -> None:
        query = self.path.split("query=", 1)[1]
        body = json.dumps(self.answers[query]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def prometheus() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Prometheus)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def vector(*values: str) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": {}, "value": [0, v]} for v in values],
        },
    }


@pytest.mark.parametrize(("answer", "expected"), [(vector("0.75"), 0.75), (vector(), None)])
def test_prometheus_instant_query_reads_one_sample_or_missing(
    prometheus: str, answer: dict[str, Any], expected: float | None
) -> None:
    _Prometheus.answers["q"] = answer
    assert (
        read_prometheus(PrometheusSource(url=prometheus, query="q", period_seconds=60)) == expected
    )


def test_prometheus_query_with_many_series_is_a_source_error(prometheus: str) -> None:
    _Prometheus.answers["many"] = vector("1", "2")
    with pytest.raises(SourceUnreadable, match="AmbiguousQuery"):
        read_prometheus(PrometheusSource(url=prometheus, query="many", period_seconds=60))


def test_an_unreachable_prometheus_is_a_source_error() -> None:
    with pytest.raises(SourceUnreadable, match="PrometheusUnreachable"):
        read_prometheus(
            PrometheusSource(url="http://127.0.0.1:9", query="q", period_seconds=1), timeout=2
        )
