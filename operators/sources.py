"""Observation of trigger sources: CloudWatch GetMetricData, S3 ListObjectsV2, Prometheus.

Each reader is synchronous (boto3 and urllib are) and is called from a worker thread. Clients are
passed in, so IRSA in the cluster and moto in tests are the same code path. A reader raises
:class:`SourceUnreadable` with a short reason; the decision turns that into ``SourceError`` and
never fires on it.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from flywheel.operators.policy import CloudWatchSource, DataArrival, PrometheusSource

MAX_LIST_PAGES = 20  # S3 pages per poll; the watermark lets the next poll go on from there
SAMPLE_KEYS = 20  # new keys kept for templating {{ newKeys }}; status must stay small
HTTP_TIMEOUT_SECONDS = 10.0


class SourceUnreadable(Exception):
    """A source could not be read. ``reason`` is CamelCase, for status and events."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Arrival:
    """New settled objects after a watermark (the greatest key already counted)."""

    since: str
    new_objects: int
    new_bytes: int
    max_key: str
    new_keys: list[str]


def _aws_errors(exc: Exception) -> SourceUnreadable:
    if isinstance(exc, NoCredentialsError):
        return SourceUnreadable("NoCredentials", str(exc))
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "ClientError")
        message = exc.response.get("Error", {}).get("Message", str(exc))
        reason = "AccessDenied" if "AccessDenied" in code else code
        return SourceUnreadable(reason, message)
    return SourceUnreadable(type(exc).__name__, str(exc))


@dataclass(frozen=True)
class Window:
    """Datapoints, oldest first, with the start time of each (RFC 3339): a breach is named
    after its datapoint, so that reading the same breach again names it the same."""

    values: list[float | None]
    times: list[str]


def read_cloudwatch(client: Any, source: CloudWatchSource, periods: int, now: datetime) -> Window:
    """The newest ``periods`` datapoints, oldest first, ``None`` where CloudWatch has none.

    Like an alarm, it evaluates complete periods; but when the current, still-open period
    already has a datapoint, that one counts at once, so a breach is not seen a period late.
    """
    period = source.period_seconds
    current = math.floor(now.timestamp() / period) * period
    first = current - periods * period
    start = datetime.fromtimestamp(first, tz=now.tzinfo)
    query = {
        "Id": "m",
        "MetricStat": {
            "Metric": {
                "Namespace": source.namespace,
                "MetricName": source.metric_name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in source.dimensions.items()],
            },
            "Period": period,
            "Stat": source.statistic,
        },
        "ReturnData": True,
    }
    try:
        response = client.get_metric_data(
            MetricDataQueries=[query],
            StartTime=start,
            EndTime=start + timedelta(seconds=(periods + 1) * period),
        )
    except (BotoCoreError, ClientError) as exc:
        raise _aws_errors(exc) from exc
    slots: list[float | None] = [None] * (periods + 1)  # n complete periods and the open one
    for result in response.get("MetricDataResults", []):
        for stamp, value in zip(
            result.get("Timestamps", []), result.get("Values", []), strict=False
        ):
            index = int((stamp.timestamp() - first) // period)
            if 0 <= index <= periods:
                slots[index] = float(value)
    times = [
        datetime.fromtimestamp(first + i * period, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for i in range(periods + 1)
    ]
    if slots[-1] is not None:
        return Window(slots[1:], times[1:])
    return Window(slots[:-1], times[:-1])


def list_new_objects(client: Any, arrival: DataArrival, watermark: str, now: datetime) -> Arrival:
    """Count settled objects under the prefix with keys after ``watermark``.

    Keys come back in lexicographic order. Counting stops at the first object that has not
    settled yet: moving the watermark past it would make it never count.
    """
    settled_before = now - timedelta(seconds=arrival.settle_seconds)
    kwargs: dict[str, Any] = {"Bucket": arrival.bucket, "Prefix": arrival.prefix}
    if watermark:
        kwargs["StartAfter"] = watermark
    count = size = 0
    max_key = watermark
    keys: list[str] = []
    try:
        for _ in range(MAX_LIST_PAGES):
            page = client.list_objects_v2(**kwargs)
            for obj in page.get("Contents", []):
                if obj["LastModified"] > settled_before:
                    return Arrival(watermark, count, size, max_key, keys)
                count += 1
                size += int(obj.get("Size", 0))
                max_key = obj["Key"]
                if len(keys) < SAMPLE_KEYS:
                    keys.append(obj["Key"])
            if not page.get("IsTruncated"):
                break
            kwargs["ContinuationToken"] = page["NextContinuationToken"]
    except (BotoCoreError, ClientError) as exc:
        raise _aws_errors(exc) from exc
    return Arrival(watermark, count, size, max_key, keys)


def read_prometheus(
    source: PrometheusSource, timeout: float = HTTP_TIMEOUT_SECONDS
) -> float | None:
    """One instant-query value; ``None`` when the query returns no sample (missing data)."""
    url = f"{source.url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': source.query})}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        raise SourceUnreadable(f"HTTP{exc.code}", f"{url}: {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        raise SourceUnreadable("PrometheusUnreachable", f"{url}: {exc}") from exc
    if body.get("status") != "success":
        raise SourceUnreadable("PrometheusQueryFailed", str(body.get("error", body)))
    data = body.get("data", {})
    result = data.get("result")
    if data.get("resultType") == "scalar":
        return float(result[1])
    if not result:
        return None
    if len(result) > 1:
        raise SourceUnreadable("AmbiguousQuery", f"query returned {len(result)} series, not one")
    return float(result[0]["value"][1])
