"""The poller: reads sources, KFP run states and the clock into ``status.observations``.

It is the only writer of ``status.observations``; the decision (``operators.decision``) is the
only writer of the rest of status. Owning disjoint fields lets the poller and the event handler
patch the same object without losing each other's writes. A reading is written only when it
is due (a source's period has passed) or changed, so that an idle policy costs no API writes.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flywheel.operators import metrics
from flywheel.operators.batching import Coalescer
from flywheel.operators.clock import CHECK_SECONDS, StepWatch
from flywheel.operators.decision import parse_ts, ts
from flywheel.operators.kfp_runs import (
    KFP_CONNECTIONS,
    PipelineNotFound,
    RunLauncher,
    pins_signature,
)
from flywheel.operators.kube import PolicyStore
from flywheel.operators.policy import (
    CloudWatchSource,
    DataArrival,
    Metric,
    Policy,
    PrometheusSource,
    Trigger,
)
from flywheel.operators.sources import (
    SourceUnreadable,
    list_new_objects_many,
    read_cloudwatch_many,
    read_prometheus,
)

PIPELINE_RECHECK_SECONDS = 300  # a found pipeline can be deleted; look again now and then
MAX_SOURCE_BACKOFF_SECONDS = 3600
# A time in status later than now by more than this was written before a backward clock step
# (stamps have whole seconds, and replicas' clocks differ a little).
FUTURE_TOLERANCE_SECONDS = 1.0
# How long a create decided but not yet recorded is left to the handler before ticks prompt it.
LAUNCH_GRACE_SECONDS = 5.0


# Worker threads per kind of outside service: a hung KFP must not stop source reads. Many
# policies act at once (a hundred breaches together): each call waits on its server, not on
# the CPU, so the pools are wide.
POOL_SIZES = {"kfp": KFP_CONNECTIONS, "aws": 8, "prometheus": 4, "kube": 16}
# Calls of one kind one policy may have in flight at once: one hung policy never holds a whole
# pool, and a hung KFP call never holds the policy's Kubernetes writes.
CALLS_PER_POLICY = 2
# How long a source read waits for others of the same source to share its call. Daemons of
# policies due at the same time wake within milliseconds; the pipeline check before the read
# can take longer.
BATCH_WINDOW_SECONDS = 0.2


@dataclass
class Services:
    """The operator's connections to the outside, passed in so that tests can aim them."""

    launcher: RunLauncher
    aws_client: Callable[[str, str | None], Any]  # (service, region) -> boto3 client
    clock: Callable[[], datetime]
    store: PolicyStore | None = None  # made from the environment at startup when not given
    # When each policy's pipeline was last looked up, by uid. In memory, not in status: an
    # unchanged answer then costs no write, and a restart simply looks everything up once.
    pipeline_checks: dict[str, datetime] = field(default_factory=dict)
    batches: Coalescer = field(default_factory=lambda: Coalescer(BATCH_WINDOW_SECONDS))
    # Steps of the clock seen so far, and per policy the count its last observation saw.
    steps: StepWatch | None = None
    _steps_seen: dict[str, int] = field(default_factory=dict)
    # The pinned versions file as last seen, and per policy as its last pipeline check saw it.
    _pins: Any = None
    _pins_seen: dict[str, Any] = field(default_factory=dict)
    _background: asyncio.Task[None] | None = None
    _pools: dict[str, ThreadPoolExecutor] = field(default_factory=dict)
    _policy_slots: dict[tuple[str, str], asyncio.Semaphore] = field(default_factory=dict)

    async def call(self, kind: str, policy_uid: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking client call on the worker pool of its kind, bounded per policy and kind.

        Every client call has its own connect and read timeouts, so a slot is always given back.
        """
        key = (kind, policy_uid)
        slots = self._policy_slots.setdefault(key, asyncio.Semaphore(CALLS_PER_POLICY))
        async with slots:
            return await self._run(kind, fn, *args)

    def start_background(self, wake_all: Callable[[], None]) -> None:
        """Once per operator: wake every poller when the clock steps or the pins file changes.

        A poller sleeps until a moment computed on the clock it read; after a step it must
        decide again now, not an hour later. A new pin (a GitOps sync, a revert) is looked up
        at once.
        """
        if self._background is not None:
            return
        self.steps = StepWatch(self.clock)
        self.steps.check()
        self._pins = pins_signature(getattr(self.launcher, "pins", None))

        async def watch() -> None:
            while True:
                await asyncio.sleep(CHECK_SECONDS)
                pins = pins_signature(getattr(self.launcher, "pins", None))
                stepped = self.steps is not None and self.steps.check()
                if stepped or pins != self._pins:
                    self._pins = pins
                    wake_all()

        self._background = asyncio.get_running_loop().create_task(watch())

    async def read_shared(
        self,
        key: tuple[str, ...],
        read: tuple[Any, ...],
        many: Callable[..., list[Any]],
        client: Any,
    ) -> Any:
        """One policy's ``read`` of the AWS source ``key``, made with the reads of the other
        policies due now in one call: ``many(client, reads)``. It holds no policy's slot."""

        async def reader(reads: list[Any]) -> list[Any]:
            return await self._run("aws", many, client, reads)

        return await self.batches.read(key, read, reader)

    async def _run(self, kind: str, fn: Callable[..., Any], *args: Any) -> Any:
        if kind not in self._pools:
            self._pools[kind] = ThreadPoolExecutor(POOL_SIZES[kind], thread_name_prefix=kind)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pools[kind], functools.partial(fn, *args))

    def close(self) -> None:
        """Stop the worker pools and close the Kubernetes connections."""
        if self._background is not None:
            self._background.cancel()
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
        self._pools.clear()
        if self.store is not None:
            self.store.api.api_client.close()

    def forget(self, policy_uid: str) -> None:
        """Drop what is held in memory for a deleted policy."""
        self.pipeline_checks.pop(policy_uid, None)
        self._steps_seen.pop(policy_uid, None)
        self._pins_seen.pop(policy_uid, None)
        for key in [k for k in self._policy_slots if k[1] == policy_uid]:
            del self._policy_slots[key]

    def clock_stepped(self, policy_uid: str) -> bool:
        """Whether the clock stepped since this policy's last observation."""
        steps = self.steps.steps if self.steps is not None else 0
        before = self._steps_seen.get(policy_uid, steps)
        self._steps_seen[policy_uid] = steps
        return before != steps


def widen_connection_pool(rest_client: Any, size: int) -> None:
    """Keep up to ``size`` connections of a generated API client open (the Kubernetes and KFP
    clients keep ten): with a wider worker pool, urllib3 would drop and reopen the rest."""
    pool_manager = rest_client.pool_manager
    pool_manager.connection_pool_kw["maxsize"] = max(
        size, pool_manager.connection_pool_kw.get("maxsize") or 1
    )


def _source_due_at(seen: Mapping[str, Any], period: float, now: datetime) -> datetime | None:
    """When a source is next due: once its period has passed; after errors, exponentially later.

    ``None``: it was never read, or the reading is stamped in the future (taken before the
    clock was stepped back), so it is due now: waiting for the stamp would stop the source for
    the size of the step.
    """
    last = parse_ts(seen.get("evaluatedAt"))
    if last is None or last > now + timedelta(seconds=FUTURE_TOLERANCE_SECONDS):
        return None
    errors = int(seen.get("errorCount", 0))
    wait = min(period * 2 ** min(errors, 16), MAX_SOURCE_BACKOFF_SECONDS) if errors else period
    return last + timedelta(seconds=wait)


def _source_due(seen: Mapping[str, Any], period: float, now: datetime) -> bool:
    due = _source_due_at(seen, period, now)
    return due is None or now >= due


def seconds_until_due(
    policy: Policy, status: Mapping[str, Any], *, generation: int, now: datetime, tick: float
) -> float:
    """How long the poller may sleep: until the next source, pipeline check, run state or wake
    time is due. Nothing due means no wake-up at all, however many policies there are; a
    change of the policy wakes the poller anyway (the event handler does it).
    """
    observations: Mapping[str, Any] = status.get("observations") or {}
    active = status.get("active") or []
    if active or status.get("observedGeneration") != generation:
        return tick  # run states to follow, launches or terminates to retry, a first decision
    due: list[datetime] = []
    for trigger in policy.triggers:
        seen = (observations.get("triggers") or {}).get(trigger.name) or {}
        kind = trigger.kind
        period = (
            kind.period_seconds
            if isinstance(kind, Metric)
            else kind.poll_interval_seconds
            if isinstance(kind, DataArrival)
            else None
        )
        if period is not None:
            due.append(_source_due_at(seen, max(period, tick), now) or now)
    wake = parse_ts(status.get("nextWakeTime"))
    if wake is not None:
        due.append(wake)
    pipeline = observations.get("pipeline") or {}
    wait = PIPELINE_RECHECK_SECONDS if pipeline.get("ok") else PIPELINE_RECHECK_SECONDS / 10
    due.append(now + timedelta(seconds=wait))
    return max(tick / 10, min((d - now).total_seconds() for d in due))


async def observe(
    policy: Policy, status: Mapping[str, Any], *, uid: str, generation: int, services: Services
) -> dict[str, Any]:
    """New observations, as a merge patch of ``status.observations`` (empty: nothing new).

    The pipeline, every source and every run are read at once: a hung call to one of them
    delays none of the others.
    """
    now = services.clock()
    observations: Mapping[str, Any] = status.get("observations") or {}
    patch: dict[str, Any] = {}
    seen_triggers = observations.get("triggers") or {}
    pipeline, runs_and_kfp, *readings = await asyncio.gather(
        _check_pipeline(policy, observations.get("pipeline"), uid, generation, now, services),
        _read_runs(status, observations.get("runs") or {}, uid, services),
        *(
            _read_trigger(
                trigger, seen_triggers.get(trigger.name) or {}, status, uid, now, services
            )
            for trigger in policy.triggers
        ),
    )
    if pipeline is not None:
        patch["pipeline"] = pipeline
    triggers = {
        t.name: reading for t, reading in zip(policy.triggers, readings, strict=True) if reading
    }
    if triggers:
        patch["triggers"] = triggers
    runs, kfp = runs_and_kfp
    if runs:
        patch["runs"] = runs
    if kfp is not None and kfp != observations.get("kfp"):
        patch["kfp"] = kfp
    wake = parse_ts(status.get("nextWakeTime"))
    unfinished = any(_unfinished(e, now) for e in status.get("active") or [])
    undecided = status.get("observedGeneration") != generation
    stepped = services.clock_stepped(uid)
    due = (wake is not None and wake <= now) or unfinished or undecided or stepped
    if due and observations.get("tick") != ts(now):
        # A tick is how the clock becomes an observation: the decision runs again on it, and
        # the handler retries what is not done yet (a launch, a terminate of a replaced run, a
        # decision on this generation of the spec that never got written).
        patch["tick"] = ts(now)
    return patch


def _unfinished(entry: Mapping[str, Any], now: datetime) -> bool:
    """Whether the handler should be prompted about an active entry now: a create that failed
    (one KFP refused only once its back-off ends) or seems stuck, or a replaced run.

    A create decided moments ago is under way (its end decides again by itself): a tick now
    would only cost a write.
    """
    if entry.get("replaced"):
        return True
    if entry.get("runId"):
        return False
    error = entry.get("launchError")
    if error is None:
        decided = parse_ts(entry.get("decidedTime"))
        return decided is None or now >= decided + timedelta(seconds=LAUNCH_GRACE_SECONDS)
    retry = parse_ts(error.get("retryTime"))
    return retry is None or retry <= now


async def _check_pipeline(
    policy: Policy,
    seen: Mapping[str, Any] | None,
    uid: str,
    generation: int,
    now: datetime,
    services: Services,
) -> dict[str, Any] | None:
    """The pipeline's ids, looked up now and then; ``None`` when there is nothing new.

    Looked up again at once when the pinned versions file changed, or a PipelineVersion event
    dropped the last check (:mod:`operators.pipeline_versions`).
    """
    last = services.pipeline_checks.get(uid)
    pins = services._pins_seen.get(uid)
    if (
        seen
        and seen.get("generation") == generation
        and last is not None
        and pins == services._pins
    ):
        wait = PIPELINE_RECHECK_SECONDS if seen.get("ok") else PIPELINE_RECHECK_SECONDS / 10
        # A check stamped in the future (before a backward clock step) is due now.
        if last <= now < last + timedelta(seconds=wait):
            return None
    services.pipeline_checks[uid] = now
    services._pins_seen[uid] = services._pins
    result = await _resolve_pipeline(policy, generation, uid, services)
    if seen and all(seen.get(k) == v for k, v in result.items()):
        return None
    return result


async def _resolve_pipeline(
    policy: Policy, generation: int, uid: str, services: Services
) -> dict[str, Any]:
    result: dict[str, Any] = {"generation": generation}
    try:
        resolved = await services.call("kfp", uid, services.launcher.resolve, policy.pipeline)
    except PipelineNotFound as exc:
        result.update(ok=False, reason="PipelineNotFound", message=str(exc))
    except Exception as exc:  # any KFP failure means "not resolvable now"
        metrics.ERRORS.labels("kfp").inc()
        result.update(ok=False, reason="KfpUnreachable", message=f"{type(exc).__name__}: {exc}")
    else:
        result.update(
            ok=True,
            reason="Found",
            message="",
            pipelineId=resolved.pipeline_id,
            versionId=resolved.version_id,
            experimentId=resolved.experiment_id,
        )
    return result


async def _read_trigger(
    trigger: Trigger,
    seen: Mapping[str, Any],
    status: Mapping[str, Any],
    uid: str,
    now: datetime,
    services: Services,
) -> dict[str, Any] | None:
    kind = trigger.kind
    if isinstance(kind, Metric):
        if not _source_due(seen, kind.period_seconds, now):
            return None
        read = _metric_reader(kind, seen, uid, now, services)
        label = "cloudwatch" if isinstance(kind.source, CloudWatchSource) else "prometheus"
    elif isinstance(kind, DataArrival):
        if not _source_due(seen, kind.poll_interval_seconds, now):
            return None
        state = next((t for t in status.get("triggers") or [] if t.get("name") == trigger.name), {})
        watermark = state.get("watermark", "")
        arrival = kind

        async def read() -> dict[str, Any]:
            s3 = services.aws_client("s3", arrival.region)
            key = ("s3", str(arrival.region), arrival.bucket, arrival.prefix)
            found = await services.read_shared(
                key, (arrival, watermark, now), list_new_objects_many, s3
            )
            return {
                "since": found.since,
                "newObjects": found.new_objects,
                "newBytes": found.new_bytes,
                "maxKey": found.max_key,
                "newKeys": found.new_keys,
            }

        label = "s3"
    else:
        return None
    started = time.monotonic()
    try:
        reading = await read()
    except SourceUnreadable as exc:
        metrics.SOURCE_READS.labels(label, "error").inc()
        return {
            "evaluatedAt": ts(now),
            "errorCount": int(seen.get("errorCount", 0)) + 1,
            "error": {"reason": exc.reason, "message": exc.message},
        }
    finally:
        metrics.SOURCE_LATENCY.labels(label).observe(time.monotonic() - started)
    metrics.SOURCE_READS.labels(label, "ok").inc()
    return {**reading, "evaluatedAt": ts(now), "errorCount": 0, "error": None}


def _metric_reader(
    metric: Metric, seen: Mapping[str, Any], uid: str, now: datetime, services: Services
) -> Callable[[], Any]:
    source = metric.source

    async def read() -> dict[str, Any]:
        if isinstance(source, PrometheusSource):
            # Prometheus answers one instant value; the window is kept in the observation,
            # each value with the time it was read.
            value = await services.call("prometheus", uid, read_prometheus, source)
            keep = metric.evaluation_periods
            return {
                "values": [*list(seen.get("values") or []), value][-keep:],
                "times": [*list(seen.get("times") or []), ts(now)][-keep:],
            }
        assert isinstance(source, CloudWatchSource)
        client = services.aws_client("cloudwatch", source.region)
        window = await services.read_shared(
            ("cloudwatch", str(source.region)),
            (source, metric.evaluation_periods, now),
            read_cloudwatch_many,
            client,
        )
        return {"values": window.values, "times": window.times}

    return read


async def _read_runs(
    status: Mapping[str, Any], seen: Mapping[str, Any], uid: str, services: Services
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """States of launched runs that changed (``None`` for runs no longer active), and whether
    KFP answered (``None``: nothing was asked)."""
    active = {e["runKey"]: e for e in status.get("active") or [] if e.get("runId")}
    patch: dict[str, Any] = {key: None for key in seen if key not in active}
    kfp: dict[str, Any] | None = None

    async def state_of(run_id: str) -> Any:
        try:
            return await services.call("kfp", uid, services.launcher.state, run_id)
        except Exception as exc:  # KFP down: keep the last known state, try next tick
            return exc

    states = await asyncio.gather(*(state_of(e["runId"]) for e in active.values()))
    for key, state in zip(active, states, strict=True):
        if isinstance(state, Exception):
            metrics.ERRORS.labels("kfp").inc()
            kfp = {"ok": False, "reason": "KfpUnreachable", "message": describe_error(state)}
            continue
        kfp = kfp or {"ok": True}
        # No nulls: the API server drops them, and the next comparison would differ forever.
        current = {"state": state.state}
        if state.finished_time:
            current["finishedTime"] = state.finished_time
        if (seen.get(key) or {}) != current:
            patch[key] = current
    return patch, kfp


def describe_error(exc: BaseException) -> str:
    """One line for status and events: the exception's type and its first line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__
