"""Typed RetrainPolicy spec: parsed and validated once, at the edge, with errors naming the field.

The CRD's schema and CEL rules reject most bad specs before they are stored. This module repeats
the cross-field rules (so a cluster without CEL, or the dev emulator, behaves the same) and adds
what the schema cannot know: that a cron expression parses and a time zone exists. Deeper code
trusts a :class:`Policy`.
"""

from __future__ import annotations

import enum
import math
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from croniter import CroniterBadDateError, croniter

GROUP = "flywheel.dev"
VERSION = "v1alpha1"
PLURAL = "retrainpolicies"
KIND = "RetrainPolicy"
DEFAULT_NONCE_ANNOTATION = "flywheel.dev/run-nonce"
METRIC_FIELDS = frozenset(
    {
        "cloudWatch",
        "prometheus",
        "comparator",
        "threshold",
        "clearThreshold",
        "evaluationPeriods",
        "datapointsToAlarm",
        "treatMissingData",
    }
)
# CloudWatch stores datapoints at these periods only (high resolution below a minute).
CLOUDWATCH_SHORT_PERIODS = (1, 5, 10, 30)
# Bounds the CRD also states: a year of waiting at most, a day between reads at most. Larger
# values overflow date arithmetic rather than mean anything.
MAX_WAIT_SECONDS = 31_536_000
MAX_PERIOD_SECONDS = 86_400
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# A Kubernetes annotation key: an optional DNS-subdomain prefix and a name of up to 63 chars.
ANNOTATION_KEY = re.compile(
    r"(?:(?P<prefix>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*)/)?"
    r"(?P<name>[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)"
)


class DeletionPolicy(enum.StrEnum):
    ORPHAN = "Orphan"
    TERMINATE = "Terminate"


class ConcurrencyPolicy(enum.StrEnum):
    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"
    QUEUE = "Queue"


class CatchUp(enum.StrEnum):
    NONE = "None"
    LATEST = "Latest"


class Comparator(enum.StrEnum):
    GT = "GreaterThanThreshold"
    GE = "GreaterThanOrEqualToThreshold"
    LT = "LessThanThreshold"
    LE = "LessThanOrEqualToThreshold"

    def breaches(self, value: float, threshold: float) -> bool:
        """Whether one datapoint is in breach."""
        match self:
            case Comparator.GT:
                return value > threshold
            case Comparator.GE:
                return value >= threshold
            case Comparator.LT:
                return value < threshold
            case Comparator.LE:
                return value <= threshold


class MissingData(enum.StrEnum):
    MISSING = "missing"
    BREACHING = "breaching"
    NOT_BREACHING = "notBreaching"
    IGNORE = "ignore"


@dataclass(frozen=True)
class FieldError:
    """One reason a spec is invalid; ``field`` is a JSON path such as ``spec.triggers[1].name``."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


T = TypeVar("T")


class InvalidPolicy(ValueError):
    """The spec cannot be acted on. Carries every error found, not only the first."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def parsed_spec(
    cache: dict[str, Any],
    meta: Mapping[str, Any],
    spec: Mapping[str, Any],
    parse: Callable[[Mapping[str, Any]], T],
) -> T:
    """``parse(spec)``, cached in ``cache`` per uid and generation (a poller asks on every
    wake-up); an :class:`InvalidPolicy` is cached too, and raised again each time."""
    key = (meta["uid"], meta.get("generation", 1))
    cached = cache.get(meta["uid"])
    if cached is None or cached[0] != key:
        try:
            cached = (key, parse(spec))
        except InvalidPolicy as exc:
            cached = (key, exc)
        cache[meta["uid"]] = cached
    if isinstance(cached[1], InvalidPolicy):
        raise cached[1]
    return cached[1]


@dataclass(frozen=True)
class PipelineRef:
    name: str | None
    version: str | None
    pipeline_version_ref: str | None
    experiment: str
    service_account: str | None
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class Schedule:
    cron: str
    time_zone: str
    catch_up: CatchUp
    starting_deadline_seconds: int | None

    @property
    def deadline_seconds(self) -> float:
        """The effective starting deadline: 60 s without catch-up, unbounded with Latest."""
        if self.starting_deadline_seconds is not None:
            return self.starting_deadline_seconds
        return 60.0 if self.catch_up is CatchUp.NONE else math.inf


@dataclass(frozen=True)
class CloudWatchSource:
    namespace: str
    metric_name: str
    dimensions: Mapping[str, str]
    statistic: str
    period_seconds: int
    region: str | None


@dataclass(frozen=True)
class PrometheusSource:
    url: str
    query: str
    period_seconds: int


@dataclass(frozen=True)
class Metric:
    source: CloudWatchSource | PrometheusSource
    comparator: Comparator
    threshold: float
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing_data: MissingData
    clear_threshold: float | None = None

    @property
    def period_seconds(self) -> int:
        return self.source.period_seconds

    def cleared(self, value: float | None) -> bool:
        """Whether a disarmed trigger may re-arm: the newest value is back past the clear level.

        Without ``clearThreshold`` the alarm leaving breach is enough; with it, the value must
        also be strictly on the healthy side of it (below for Greater*, above for Less*), so a
        metric hovering at the threshold does not fire on every wobble.
        """
        if self.clear_threshold is None:
            return True
        if value is None:
            return False
        if self.comparator in (Comparator.GT, Comparator.GE):
            return value < self.clear_threshold
        return value > self.clear_threshold


@dataclass(frozen=True)
class DataArrival:
    bucket: str
    prefix: str
    min_new_objects: int
    min_new_bytes: int
    settle_seconds: int
    poll_interval_seconds: int
    region: str | None


@dataclass(frozen=True)
class Manual:
    annotation: str


TriggerKind = Schedule | Metric | DataArrival | Manual


@dataclass(frozen=True)
class Trigger:
    name: str
    kind: TriggerKind

    @property
    def kind_name(self) -> str:
        return {
            Schedule: "schedule",
            Metric: "metric",
            DataArrival: "dataArrival",
            Manual: "manual",
        }[type(self.kind)]


@dataclass(frozen=True)
class Backoff:
    initial_seconds: int = 60
    factor: float = 2.0
    max_seconds: int = 3600

    def delay(self, consecutive_failures: int) -> float:
        """Seconds to wait after the n-th failure in a row; zero when nothing failed."""
        if consecutive_failures <= 0:
            return 0.0
        # Cap the exponent first so that a long failure streak cannot overflow the float.
        exponent = min(consecutive_failures - 1, 64)
        return float(min(self.initial_seconds * self.factor**exponent, self.max_seconds))


@dataclass(frozen=True)
class Policy:
    pipeline: PipelineRef
    triggers: tuple[Trigger, ...]
    concurrency: ConcurrencyPolicy = ConcurrencyPolicy.FORBID
    cooldown_after_success: int = 0
    cooldown_after_failure: int = 0
    backoff: Backoff = field(default_factory=Backoff)
    pause_after_failures: int | None = None
    suspend: bool = False
    dry_run: bool = False
    successful_history: int = 5
    failed_history: int = 5
    deletion: DeletionPolicy = DeletionPolicy.ORPHAN

    def trigger(self, name: str) -> Trigger | None:
        return next((t for t in self.triggers if t.name == name), None)


class _Reader:
    """Reads typed fields from a dict and collects errors instead of stopping at the first one."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    def get(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: str,
        kind: type | tuple[type, ...],
        default: Any = None,
        *,
        required: bool = False,
    ) -> Any:
        if key not in obj or obj[key] is None:
            if required:
                self.error(f"{path}.{key}", "is required")
            return default
        value = obj[key]
        # bool is an int in Python; a YAML `true` must not pass as a number.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            self.error(f"{path}.{key}", f"must be {_type_name(kind)}, not a boolean")
            return default
        if not isinstance(value, kind):
            self.error(f"{path}.{key}", f"must be {_type_name(kind)}, got {value!r}")
            return default
        return value

    def minimum(self, value: int | float | None, path: str, low: float) -> None:
        if value is not None and value < low:
            self.error(path, f"must be at least {low:g}, got {value}")

    def between(self, value: int | float | None, path: str, low: float, high: float) -> None:
        self.minimum(value, path, low)
        if value is not None and value > high:
            self.error(path, f"must be at most {high:.12g}, got {value}")

    def choice(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: str,
        enum_cls: type[enum.StrEnum],
        default: enum.StrEnum,
    ) -> Any:
        raw = self.get(obj, key, path, str, default.value)
        try:
            return enum_cls(raw)
        except ValueError:
            allowed = ", ".join(m.value for m in enum_cls)
            self.error(f"{path}.{key}", f"unknown value {raw!r}; allowed: {allowed}")
            return default


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        dict: "an object",
        list: "a list",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def parse_policy(spec: Mapping[str, Any]) -> Policy:
    """Turn a RetrainPolicy ``spec`` into a :class:`Policy`, or raise :class:`InvalidPolicy`."""
    r = _Reader()
    pipeline = _parse_pipeline(r, r.get(spec, "pipeline", "spec", dict, {}, required=True))
    raw_triggers = r.get(spec, "triggers", "spec", list, [], required=True)
    if "triggers" in spec and not raw_triggers:
        r.error("spec.triggers", "needs at least one trigger")
    triggers = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_triggers):
        path = f"spec.triggers[{i}]"
        if not isinstance(raw, dict):
            r.error(path, "must be an object")
            continue
        trigger = _parse_trigger(r, raw, path)
        if trigger is None:
            continue
        if trigger.name in seen:
            r.error(f"{path}.name", f"duplicate trigger name {trigger.name!r}")
        seen.add(trigger.name)
        triggers.append(trigger)

    concurrency = r.choice(
        spec, "concurrencyPolicy", "spec", ConcurrencyPolicy, ConcurrencyPolicy.FORBID
    )
    cooldown = r.get(spec, "cooldown", "spec", dict, {})
    after_success = r.get(cooldown, "afterSuccessSeconds", "spec.cooldown", int, 0)
    after_failure = r.get(cooldown, "afterFailureSeconds", "spec.cooldown", int, 0)
    r.between(after_success, "spec.cooldown.afterSuccessSeconds", 0, MAX_WAIT_SECONDS)
    r.between(after_failure, "spec.cooldown.afterFailureSeconds", 0, MAX_WAIT_SECONDS)
    raw_backoff = r.get(spec, "backoff", "spec", dict, {})
    backoff = Backoff(
        initial_seconds=r.get(raw_backoff, "initialSeconds", "spec.backoff", int, 60),
        factor=float(r.get(raw_backoff, "factor", "spec.backoff", (int, float), 2.0)),
        max_seconds=r.get(raw_backoff, "maxSeconds", "spec.backoff", int, 3600),
    )
    r.between(backoff.initial_seconds, "spec.backoff.initialSeconds", 0, MAX_WAIT_SECONDS)
    r.between(backoff.max_seconds, "spec.backoff.maxSeconds", 0, MAX_WAIT_SECONDS)
    r.between(backoff.factor, "spec.backoff.factor", 1, 100)
    if backoff.max_seconds < backoff.initial_seconds:
        r.error("spec.backoff.maxSeconds", "must not be below backoff.initialSeconds")
    pause = r.get(spec, "pauseAfterConsecutiveFailures", "spec", int)
    r.between(pause, "spec.pauseAfterConsecutiveFailures", 1, 1000)
    successful = r.get(spec, "successfulRunsHistoryLimit", "spec", int, 5)
    failed = r.get(spec, "failedRunsHistoryLimit", "spec", int, 5)
    r.minimum(successful, "spec.successfulRunsHistoryLimit", 0)
    r.minimum(failed, "spec.failedRunsHistoryLimit", 0)
    policy = Policy(
        pipeline=pipeline,
        triggers=tuple(triggers),
        concurrency=concurrency,
        cooldown_after_success=after_success,
        cooldown_after_failure=after_failure,
        backoff=backoff,
        pause_after_failures=pause,
        suspend=r.get(spec, "suspend", "spec", bool, False),
        dry_run=r.get(spec, "dryRun", "spec", bool, False),
        successful_history=successful,
        failed_history=failed,
        deletion=r.choice(spec, "deletionPolicy", "spec", DeletionPolicy, DeletionPolicy.ORPHAN),
    )
    if r.errors:
        raise InvalidPolicy(r.errors)
    return policy


def _parse_pipeline(r: _Reader, raw: Mapping[str, Any]) -> PipelineRef:
    path = "spec.pipeline"
    name = r.get(raw, "name", path, str)
    version = r.get(raw, "version", path, str)
    ref = r.get(raw, "pipelineVersionRef", path, str)
    if (name is None) == (ref is None) and raw:
        r.error(path, "set exactly one of pipeline.name and pipeline.pipelineVersionRef")
    if version is not None and name is None:
        r.error(f"{path}.version", "needs pipeline.name")
    return PipelineRef(
        name=name,
        version=version,
        pipeline_version_ref=ref,
        experiment=r.get(raw, "experiment", path, str, "Default"),
        service_account=r.get(raw, "serviceAccount", path, str),
        parameters=r.get(raw, "parameters", path, dict, {}),
    )


def _parse_trigger(r: _Reader, raw: Mapping[str, Any], path: str) -> Trigger | None:
    name = r.get(raw, "name", path, str, required=True)
    kinds = [k for k in ("schedule", "metric", "dataArrival", "manual") if k in raw]
    if len(kinds) != 1:
        r.error(path, "a trigger sets exactly one of schedule, metric, dataArrival and manual")
        return None
    kind_key = kinds[0]
    body = r.get(raw, kind_key, path, dict, {})
    sub = f"{path}.{kind_key}"
    parsers = {
        "schedule": _parse_schedule,
        "metric": _parse_metric,
        "dataArrival": _parse_data_arrival,
        "manual": _parse_manual,
    }
    kind = parsers[kind_key](r, body, sub)
    if name is None or kind is None:
        return None
    return Trigger(name=name, kind=kind)


def _parse_schedule(r: _Reader, raw: Mapping[str, Any], path: str) -> Schedule | None:
    cron = r.get(raw, "cron", path, str, required=True)
    tz = r.get(raw, "timeZone", path, str, "UTC")
    deadline = r.get(raw, "startingDeadlineSeconds", path, int)
    r.between(deadline, f"{path}.startingDeadlineSeconds", 1, MAX_WAIT_SECONDS)
    catch_up = r.choice(raw, "catchUp", path, CatchUp, CatchUp.NONE)
    if cron is not None and (len(cron.split()) != 5 or not croniter.is_valid(cron)):
        r.error(f"{path}.cron", f"not a five-field cron expression: {cron!r}")
        cron = None
    elif cron is not None and not _ever_matches(cron):
        r.error(f"{path}.cron", f"{cron!r} never matches a date (e.g. 30 February)")
        cron = None
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        r.error(f"{path}.timeZone", f"unknown time zone {tz!r}")
        tz = None
    if cron is None or tz is None:
        return None
    return Schedule(cron=cron, time_zone=tz, catch_up=catch_up, starting_deadline_seconds=deadline)


def _ever_matches(cron: str) -> bool:
    """Whether the expression names a real date; croniter gives up after decades of none."""
    try:
        croniter(cron, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        return False
    return True


def _parse_metric(r: _Reader, raw: Mapping[str, Any], path: str) -> Metric | None:
    source: CloudWatchSource | PrometheusSource | None = None
    if ("cloudWatch" in raw) == ("prometheus" in raw):
        r.error(path, "set exactly one of metric.cloudWatch and metric.prometheus")
    elif "cloudWatch" in raw:
        cw = r.get(raw, "cloudWatch", path, dict, {})
        cw_path = f"{path}.cloudWatch"
        period = r.get(cw, "periodSeconds", cw_path, int, 300)
        r.between(period, f"{cw_path}.periodSeconds", 1, MAX_PERIOD_SECONDS)
        if period >= 1 and period not in CLOUDWATCH_SHORT_PERIODS and period % 60:
            r.error(
                f"{cw_path}.periodSeconds",
                f"must be 1, 5, 10, 30 or a multiple of 60 (CloudWatch periods), got {period}",
            )
            period = 60
        source = CloudWatchSource(
            namespace=r.get(cw, "namespace", cw_path, str, "", required=True),
            metric_name=r.get(cw, "metricName", cw_path, str, "", required=True),
            dimensions=r.get(cw, "dimensions", cw_path, dict, {}),
            statistic=r.get(cw, "statistic", cw_path, str, "Average"),
            period_seconds=period,
            region=r.get(cw, "region", cw_path, str),
        )
    else:
        prom = r.get(raw, "prometheus", path, dict, {})
        prom_path = f"{path}.prometheus"
        period = r.get(prom, "periodSeconds", prom_path, int, 60)
        r.between(period, f"{prom_path}.periodSeconds", 1, MAX_PERIOD_SECONDS)
        url = r.get(prom, "url", prom_path, str, "", required=True)
        if url and not url.startswith(("http://", "https://")):
            r.error(f"{prom_path}.url", "must start with http:// or https://")
        source = PrometheusSource(
            url=url,
            query=r.get(prom, "query", prom_path, str, "", required=True),
            period_seconds=period,
        )
    comparator = r.choice(raw, "comparator", path, Comparator, Comparator.GT)
    if "comparator" not in raw:
        r.error(f"{path}.comparator", "is required")
    threshold = r.get(raw, "threshold", path, (int, float), required=True)
    periods = r.get(raw, "evaluationPeriods", path, int, 1)
    r.minimum(periods, f"{path}.evaluationPeriods", 1)
    to_alarm = r.get(raw, "datapointsToAlarm", path, int, periods)
    r.minimum(to_alarm, f"{path}.datapointsToAlarm", 1)
    if to_alarm > periods:
        r.error(
            f"{path}.datapointsToAlarm",
            f"must not exceed evaluationPeriods ({to_alarm} > {periods})",
        )
    missing = r.choice(raw, "treatMissingData", path, MissingData, MissingData.MISSING)
    clear = r.get(raw, "clearThreshold", path, (int, float))
    if clear is not None and threshold is not None:
        above = comparator in (Comparator.GT, Comparator.GE)
        if (clear > threshold) if above else (clear < threshold):
            side = "at or below" if above else "at or above"
            r.error(f"{path}.clearThreshold", f"must be {side} threshold ({threshold:g})")
    unknown = sorted(set(raw) - METRIC_FIELDS)
    if unknown:
        r.error(
            path,
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(METRIC_FIELDS))}",
        )
    if source is None or threshold is None:
        return None
    return Metric(
        source=source,
        comparator=comparator,
        threshold=float(threshold),
        evaluation_periods=periods,
        datapoints_to_alarm=to_alarm,
        treat_missing_data=missing,
        clear_threshold=None if clear is None else float(clear),
    )


def _parse_data_arrival(r: _Reader, raw: Mapping[str, Any], path: str) -> DataArrival | None:
    bucket = r.get(raw, "bucket", path, str, required=True)
    arrival = DataArrival(
        bucket=bucket or "",
        prefix=r.get(raw, "prefix", path, str, ""),
        min_new_objects=r.get(raw, "minNewObjects", path, int, 1),
        min_new_bytes=r.get(raw, "minNewBytes", path, int, 0),
        settle_seconds=r.get(raw, "settleSeconds", path, int, 0),
        poll_interval_seconds=r.get(raw, "pollIntervalSeconds", path, int, 60),
        region=r.get(raw, "region", path, str),
    )
    r.between(arrival.min_new_objects, f"{path}.minNewObjects", 1, 1_000_000)
    r.minimum(arrival.min_new_bytes, f"{path}.minNewBytes", 0)
    r.between(arrival.settle_seconds, f"{path}.settleSeconds", 0, MAX_WAIT_SECONDS)
    r.between(arrival.poll_interval_seconds, f"{path}.pollIntervalSeconds", 1, MAX_PERIOD_SECONDS)
    if bucket and not BUCKET_NAME.fullmatch(bucket):
        r.error(
            f"{path}.bucket",
            f"not an S3 bucket name: {bucket!r} (3-63 lowercase letters, digits, dots, hyphens)",
        )
    return arrival if bucket else None


def _parse_manual(r: _Reader, raw: Mapping[str, Any], path: str) -> Manual:
    key = r.get(raw, "annotation", path, str, DEFAULT_NONCE_ANNOTATION)
    match = ANNOTATION_KEY.fullmatch(key)
    if not match or len(match["name"]) > 63 or len(match["prefix"] or "") > 253:
        r.error(
            f"{path}.annotation",
            f"not an annotation key: {key!r} (an optional DNS-subdomain prefix and '/', "
            "then up to 63 letters, digits, '-', '_' or '.')",
        )
    return Manual(annotation=key)
