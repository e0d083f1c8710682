"""Observation of trigger sources: CloudWatch GetMetricData, S3 ListObjectsV2, Prometheus.

The ``*_many`` readers serve many policies with one read of a shared source (the poller
gathers the reads that come due together).

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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from flywheel.operators.policy import CloudWatchSource, DataArrival, PrometheusSource

MAX_LIST_PAGES = 20  # S3 pages per poll; the watermark lets the next poll go on from there
SAMPLE_KEYS = 20  # new keys kept for templating {{ newKeys }}; status must stay small
HTTP_TIMEOUT_SECONDS = 10.0
MAX_QUERIES_PER_CALL = 500  # GetMetricData takes at most 500 MetricDataQueries


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


def read_cloudwatch_many(
    client: Any, reads: Sequence[tuple[CloudWatchSource, int, datetime]]
) -> list[Window | SourceUnreadable]:
    """Many ``(source, periods, now)`` reads of one region, in as few ``GetMetricData`` calls as
    possible, one result per read, in order: each the newest ``periods`` datapoints, oldest first,
    ``None`` where CloudWatch has none.

    Like an alarm, it evaluates complete periods; but when the current, still-open period
    already has a datapoint, that one counts at once, so a breach is not seen a period late.

    Reads of the same time window share a call, up to 500 queries each; identical metric
    reads share one query. Windows are not merged: CloudWatch aligns datapoints to each call's
    start time. A failed call fails only its own reads; a query that comes back ``Forbidden``
    or ``InternalError`` fails only the reads of that query.
    """
    spans = [_span(source.period_seconds, periods, now) for source, periods, now in reads]
    ids: list[str] = []
    queries: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}  # span -> stat -> query
    for (source, _, _), span in zip(reads, spans, strict=True):
        stat = _metric_stat(source)
        by_stat = queries.setdefault(span, {})
        key = json.dumps(stat, sort_keys=True)
        if key not in by_stat:
            # Ids must match ^[a-z][a-zA-Z0-9_]*$ and be unique within a call.
            by_stat[key] = {"Id": f"q{len(ids)}", "MetricStat": stat, "ReturnData": True}
        ids.append(by_stat[key]["Id"])
    points: dict[str, dict[float, float]] = {}
    errors: dict[str, SourceUnreadable] = {}
    for (first, end), by_stat in queries.items():
        batch = list(by_stat.values())
        for offset in range(0, len(batch), MAX_QUERIES_PER_CALL):
            chunk = batch[offset : offset + MAX_QUERIES_PER_CALL]
            _get_metric_data(client, chunk, first, end, points, errors)
    return [
        errors.get(query_id) or _window(points.get(query_id, {}), span, source.period_seconds)
        for query_id, span, (source, _, _) in zip(ids, spans, reads, strict=True)
    ]


def _span(period: int, periods: int, now: datetime) -> tuple[int, int]:
    """Start and end (epoch seconds) of ``periods`` complete periods and the open one."""
    current = math.floor(now.timestamp() / period) * period
    return current - periods * period, current + period


def _metric_stat(source: CloudWatchSource) -> dict[str, Any]:
    return {
        "Metric": {
            "Namespace": source.namespace,
            "MetricName": source.metric_name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in source.dimensions.items()],
        },
        "Period": source.period_seconds,
        "Stat": source.statistic,
    }


def _get_metric_data(
    client: Any,
    queries: list[dict[str, Any]],
    first: int,
    end: int,
    points: dict[str, dict[float, float]],
    errors: dict[str, SourceUnreadable],
) -> None:
    """One ``GetMetricData`` call (all its pages): datapoints into ``points`` by query Id,
    failures into ``errors``."""
    try:
        pages = client.get_paginator("get_metric_data").paginate(
            MetricDataQueries=queries,
            StartTime=datetime.fromtimestamp(first, tz=UTC),
            EndTime=datetime.fromtimestamp(end, tz=UTC),
        )
        for page in pages:
            for result in page.get("MetricDataResults", []):
                query_id = result["Id"]
                if result.get("StatusCode") in ("Forbidden", "InternalError"):
                    text = "; ".join(m.get("Value", "") for m in result.get("Messages", []))
                    errors[query_id] = SourceUnreadable(result["StatusCode"], text or query_id)
                series = points.setdefault(query_id, {})
                for stamp, value in zip(
                    result.get("Timestamps", []), result.get("Values", []), strict=False
                ):
                    series[stamp.timestamp()] = float(value)
    except (BotoCoreError, ClientError) as exc:
        for query in queries:
            errors[query["Id"]] = _aws_errors(exc)


def _window(series: dict[float, float], span: tuple[int, int], period: int) -> Window:
    first, end = span
    periods = (end - first) // period - 1
    slots: list[float | None] = [None] * (periods + 1)  # n complete periods and the open one
    for stamp, value in series.items():
        index = int((stamp - first) // period)
        if 0 <= index <= periods:
            slots[index] = value
    times = [
        datetime.fromtimestamp(first + i * period, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for i in range(periods + 1)
    ]
    if slots[-1] is not None:
        return Window(slots[1:], times[1:])
    return Window(slots[:-1], times[:-1])


def list_new_objects_many(
    client: Any, reads: Sequence[tuple[DataArrival, str, datetime]]
) -> list[Arrival | SourceUnreadable]:
    """Many ``(arrival, watermark, now)`` reads of ONE bucket and prefix, from one listing that
    starts at the lowest watermark; one result per read: the settled objects under the prefix
    with keys after its watermark.

    Keys come back in lexicographic order. Counting stops at the first object that has not
    settled yet: moving the watermark past it would make it never count.

    A listing cut short (``MAX_LIST_PAGES``, or an object not settled yet) tells a read whose
    watermark lies past its last key nothing: that read lists on its own, so one lagging
    policy never hides new objects from the others.
    """
    arrival = reads[0][0]
    start = min(watermark for _, watermark, _ in reads)
    # No read counts an object past the first that has not settled for the most lenient one.
    settled_before = max(now - timedelta(seconds=a.settle_seconds) for a, _, now in reads)
    try:
        objects, complete = _list(client, arrival.bucket, arrival.prefix, start, settled_before)
    except SourceUnreadable as exc:
        return [exc] * len(reads)
    last = objects[-1]["Key"] if objects else start
    return [
        list_new_objects_many(client, [(a, watermark, now)])[0]
        if not complete and watermark > start and watermark >= last
        else _count(objects, a, watermark, now)
        for a, watermark, now in reads
    ]


def _list(
    client: Any, bucket: str, prefix: str, start_after: str, settled_before: datetime
) -> tuple[list[dict[str, Any]], bool]:
    """Objects after ``start_after`` up to the first not settled before ``settled_before``,
    and whether it listed everything there is (``False``: cut short)."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if start_after:
        kwargs["StartAfter"] = start_after
    objects: list[dict[str, Any]] = []
    try:
        for _ in range(MAX_LIST_PAGES):
            page = client.list_objects_v2(**kwargs)
            for obj in page.get("Contents", []):
                if obj["LastModified"] > settled_before:
                    return objects, False
                objects.append(obj)
            if not page.get("IsTruncated"):
                return objects, True
            kwargs["ContinuationToken"] = page["NextContinuationToken"]
    except (BotoCoreError, ClientError) as exc:
        raise _aws_errors(exc) from exc
    return objects, False


def _count(
    objects: list[dict[str, Any]], arrival: DataArrival, watermark: str, now: datetime
) -> Arrival:
    """One read's share of a listing: its settled objects after its own watermark."""
    settled_before = now - timedelta(seconds=arrival.settle_seconds)
    count = size = 0
    max_key = watermark
    keys: list[str] = []
    for obj in objects:
        if obj["Key"] <= watermark:
            continue
        if obj["LastModified"] > settled_before:
            break
        count += 1
        size += int(obj.get("Size", 0))
        max_key = obj["Key"]
        if len(keys) < SAMPLE_KEYS:
            keys.append(obj["Key"])
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
