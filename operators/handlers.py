"""The kopf handlers (the imperative shell): gather observations, apply decisions.

Two handlers per RetrainPolicy, each the sole writer of its part of status:

* the poller daemon :func:`poll` writes ``status.observations`` (sources, run states, ticks);
* the event handler :func:`reconcile` runs on every change, creates runs whose key is already in
  status, asks :func:`operators.decision.decide` what to do next, and writes the rest, with the
  resourceVersion it decided on as a precondition (see :mod:`operators.kube`).

Exactly once: a firing's run key reaches status in one event; the run is created in the next
one, by key, after a lookup. A crash in between leaves the key in status, and the restarted
operator finds or creates that run, never a second one.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.config
import kopf
import urllib3

from flywheel.operators import metrics, peering
from flywheel.operators.decision import (
    FAILED_STATES,
    SUCCEEDED_STATES,
    Decision,
    Event,
    decide,
    invalid,
    parse_ts,
    set_condition,
    ts,
)
from flywheel.operators.kfp_runs import KFP_TIMEOUT, ResolvedPipeline, RunLauncher, connect
from flywheel.operators.kube import Conflict, PolicyStore, Unavailable, api_from_environment
from flywheel.operators.policy import (
    GROUP,
    PLURAL,
    VERSION,
    DeletionPolicy,
    InvalidPolicy,
    Manual,
    Policy,
    parse_policy,
)
from flywheel.operators.poller import Services, describe_error, observe, seconds_until_due

log = logging.getLogger(__name__)
# How often active runs are followed and unfinished launches retried, and the shortest source
# period; the tests shorten it.
TICK_SECONDS = float(os.environ.get("FLYWHEEL_TICK_SECONDS", "10"))
FINALIZER = "flywheel.dev/retraining-operator"
# botocore waits 60 s to connect and 60 s per read by default, with retries on top.
AWS_CONFIG = botocore.config.Config(
    connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}
)
# Writes answered 409 (or not at all) before the handler gives up until the next change.
MAX_ATTEMPTS = 30


def default_services() -> Services:
    """Services from the environment: KFP from ``KF_PIPELINES_ENDPOINT``, AWS through IRSA."""
    clients: dict[tuple[str, str | None], Any] = {}

    def aws_client(service: str, region: str | None) -> Any:
        # boto3 clients are thread-safe once made; making them is not, so cache per region.
        if (service, region) not in clients:
            clients[service, region] = boto3.session.Session().client(
                service, region_name=region, config=AWS_CONFIG
            )
        return clients[service, region]

    return Services(
        launcher=RunLauncher(connect(namespace=os.environ.get("KFP_NAMESPACE"))),
        aws_client=aws_client,
        clock=lambda: datetime.now(tz=UTC),
    )


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """All operator settings in one place."""
    settings.persistence.finalizer = FINALIZER
    peering.configure(settings.peering)
    # Events are posted explicitly with kopf.event (which ignores this level), one per launch,
    # skip and error; of the logs, only kopf's own warnings and errors become events.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 30
    if getattr(memo, "services", None) is None:
        memo.services = default_services()
    if memo.services.store is None:
        memo.services.store = PolicyStore(api_from_environment())
    memo.policies = {}
    memo.launched = {}  # by policy uid: run key -> the id and launch time of its KFP run
    memo.wakeups = {}  # by policy uid: set to wake the poller, which otherwise sleeps until due
    objects_log = logging.getLogger("kopf.objects")
    if not any(isinstance(f, _QuietRoutine) for f in objects_log.filters):
        objects_log.addFilter(_QuietRoutine())


@kopf.on.cleanup()
def close(memo: kopf.Memo, **_: Any) -> None:
    """Give back connections and worker threads, so that a stopping operator leaves none open."""
    memo.services.close()


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account, else the kubeconfig named by ``KUBECONFIG`` when called.

    kopf's default goes through the kubernetes client, which reads ``KUBECONFIG`` once at
    import; ``--dev`` and the tests point it at the emulator later than that.
    """
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


class _QuietRoutine(logging.Filter):
    """Drop kopf's per-call success lines: with a handler call per change they are most of the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.INFO and record.getMessage() in ROUTINE)


ROUTINE = frozenset({"Handler 'reconcile' succeeded.", "Daemon 'poll' succeeded."})


def _policy(memo: kopf.Memo, meta: kopf.Meta, spec: kopf.Spec) -> Policy:
    """The parsed spec, cached per uid and generation: the poller asks for it on every wake-up."""
    key = (meta["uid"], meta.get("generation", 1))
    cached = memo.policies.get(meta["uid"])
    if cached is None or cached[0] != key:
        try:
            cached = (key, parse_policy(spec))
        except InvalidPolicy as exc:
            cached = (key, exc)
        memo.policies[meta["uid"]] = cached
    if isinstance(cached[1], InvalidPolicy):
        raise cached[1]
    return cached[1]


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=5)
async def poll(
    stopped: kopf.DaemonStopped,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """Write what is new in the sources, the runs and the clock; decide nothing.

    One task per policy that sleeps until something is due (a source's period, a wake time, a
    run to follow): an idle policy costs no CPU. :func:`reconcile` wakes it on every change.
    ``spec`` and ``status`` are kopf's live views of the object.
    """
    services: Services = memo.services
    uid = meta["uid"]
    wake = memo.wakeups.setdefault(uid, asyncio.Event())
    while not stopped:
        wake.clear()
        delay = await _poll_once(spec, status, meta, memo, services, logger)
        stop = asyncio.ensure_future(stopped.wait())
        woken = asyncio.ensure_future(wake.wait())
        await asyncio.wait({stop, woken}, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        for waiter in (stop, woken):
            waiter.cancel()
    memo.wakeups.pop(uid, None)


async def _poll_once(
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    memo: kopf.Memo,
    services: Services,
    logger: kopf.Logger,
) -> float | None:
    """Observe once and write what is new; returns how long to sleep (``None``: until woken)."""
    try:
        policy = _policy(memo, meta, spec)
    except InvalidPolicy:
        return None  # reconcile() reports it; there is nothing valid to observe
    current: Mapping[str, Any] = status
    if not (policy.suspend and not status.get("active")):
        generation = meta.get("generation", 1)
        updates = await observe(
            policy, status, uid=meta["uid"], generation=generation, services=services
        )
        if updates:
            try:
                written = await services.call(
                    "kube",
                    meta["uid"],
                    services.store.patch_observations,
                    meta["namespace"],
                    meta["name"],
                    updates,
                )
            except Unavailable as exc:
                logger.warning("Observations not written, trying again: %s", exc)
                return TICK_SECONDS
            if written is None:
                return None  # gone
            # The live view catches up with the watch; until then, this write is the truth.
            current = written.get("status") or {}
    elif not status.get("active"):
        return None
    return seconds_until_due(
        policy,
        current,
        generation=meta.get("generation", 1),
        now=services.clock(),
        tick=TICK_SECONDS,
    )


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def delete(
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """``deletionPolicy``: terminate the active runs, or leave them (Orphan, the default).

    Keys decided but not created are dropped either way: :func:`reconcile` creates nothing
    once deletion has begun. With Terminate, a failed terminate holds the finalizer and kopf
    tries again.
    """
    services: Services = memo.services
    uid = meta["uid"]
    known = memo.launched.pop(uid, {})
    try:
        policy = _policy(memo, meta, spec)
    except InvalidPolicy:
        return
    if policy.deletion is not DeletionPolicy.TERMINATE:
        return
    observed = (status.get("observations") or {}).get("runs") or {}
    for entry in status.get("active") or []:
        run_id = entry.get("runId") or known.get(entry["runKey"], {}).get("runId")
        if run_id is None:
            # A create that timed out may still have landed: look for it by name.
            run_id = await services.call("kfp", uid, services.launcher.find, entry["runName"])
        state = (observed.get(entry["runKey"]) or {}).get("state")
        if run_id is None or state in SUCCEEDED_STATES | FAILED_STATES:
            continue
        try:
            await services.call("kfp", uid, services.launcher.terminate, run_id)
        except Exception as exc:
            message = f"terminating run {run_id}: {describe_error(exc)}"
            raise kopf.TemporaryError(message, delay=10) from exc
        logger.info("Terminated run %s (%s): deletionPolicy is Terminate", entry["runName"], run_id)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def reconcile(
    type: str, body: kopf.Body, meta: kopf.Meta, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Decide on the latest state of the policy and write the decision onto that very state.

    The watch may deliver events older than this handler's own last write. The decision is
    written with the resourceVersion it was made from; a 409 means "decided on old state":
    read the object again and decide again, until the write lands or the object is gone. An
    API server that fails to answer is treated the same way: kopf calls an event handler once.
    """
    services: Services = memo.services
    if type == "DELETED":
        memo.policies.pop(meta["uid"], None)
        memo.launched.pop(meta["uid"], None)
        services.forget(meta["uid"])
        return
    if FINALIZER not in (meta.get("finalizers") or []):
        # kopf adds its finalizer (the daemon needs one) with the resourceVersion of this very
        # event; a status write first would make that fail, again and again. The event of the
        # finalizer's arrival brings this handler back.
        return
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    obj: dict[str, Any] | None = copy.deepcopy(dict(body))
    for attempt in range(MAX_ATTEMPTS):
        try:
            if obj is None:
                obj = await services.call("kube", uid, services.store.read, namespace, name)
            if obj is None or obj["metadata"].get("deletionTimestamp") or not obj.get("spec"):
                return
            await _reconcile_once(obj, services, memo, logger)
            return
        except (Conflict, Unavailable) as exc:
            metrics.ERRORS.labels("conflict" if isinstance(exc, Conflict) else "kubernetes").inc()
            logger.debug("Deciding again on the latest state: %s", exc)
            obj = None
            await asyncio.sleep(min(0.05 * 2**attempt, 2.0))
    logger.error(
        "Gave up writing the decision after %d attempts; the next change retries", MAX_ATTEMPTS
    )


async def _reconcile_once(
    obj: dict[str, Any], services: Services, memo: kopf.Memo, logger: kopf.Logger
) -> None:
    """One read-decide-write round; raises :class:`Conflict` if the object moved on meanwhile."""
    meta = obj["metadata"]
    status: dict[str, Any] = obj.get("status") or {}
    generation = meta.get("generation", 1)
    now = services.clock()
    try:
        policy = _policy(memo, meta, obj["spec"])
    except InvalidPolicy as exc:
        decision = invalid(status, exc.errors, now=now, generation=generation)
    else:
        current = copy.deepcopy(status)
        known = memo.launched.setdefault(meta["uid"], {})
        await _settle_keyed_runs(policy, current, obj, known, services, logger)
        metrics.EVALUATIONS.inc()
        decision = decide_or_report(
            policy,
            current,
            annotations=meta.get("annotations") or {},
            now=now,
            generation=generation,
            uid=meta["uid"],
            name=meta["name"],
        )
    changes = status_changes(status, decision.status)
    if changes:
        written = await services.call(
            "kube",
            meta["uid"],
            services.store.patch_status,
            meta["namespace"],
            meta["name"],
            meta["resourceVersion"],
            changes,
        )
        if written is None:
            return  # deleted meanwhile
        wake = memo.wakeups.get(meta["uid"])
        if wake is not None:
            wake.set()  # the poller sleeps until due; what is due may have changed now
    keys = {e["runKey"] for e in decision.status.get("active") or []}
    known = memo.launched.get(meta["uid"], {})
    for key in [k for k in known if k not in keys]:
        del known[key]  # its run is recorded as finished: nothing will ask again
    _record(obj, decision.events)
    await _terminate_replaced(decision.status, status, meta["uid"], obj, services)


def decide_or_report(policy: Policy, status: Mapping[str, Any], **kwargs: Any) -> Decision:
    """:func:`decide`, or, should it fail, ``Ready=False DecisionError`` with the manual
    trigger still served: a person can always start a run by hand."""
    try:
        return decide(policy, status, **kwargs)
    except Exception as exc:
        log.exception("decide() failed for %s", kwargs.get("name"))
        metrics.ERRORS.labels("decision").inc()
        error = exc
    manual = tuple(t for t in policy.triggers if isinstance(t.kind, Manual))
    try:
        decision = decide(dataclasses.replace(policy, triggers=manual), status, **kwargs)
    except Exception:
        log.exception("decide() failed for the manual triggers of %s too", kwargs.get("name"))
        decision = Decision(status={k: v for k, v in status.items() if k != "observations"})
    # The other triggers keep their state (watermarks, schedule positions) as it was.
    states = {t.get("name"): t for t in status.get("triggers") or []}
    states.update({t["name"]: t for t in decision.status.get("triggers") or []})
    decision.status["triggers"] = [states[t.name] for t in policy.triggers if t.name in states]
    message = f"{describe_error(error)}; only manual triggers are served"
    before = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
    conditions = decision.status.setdefault("conditions", [])
    set_condition(
        conditions, "Ready", False, "DecisionError", message, kwargs["now"], kwargs["generation"]
    )
    if before.get("reason") != "DecisionError" or before.get("message") != message:
        decision.events.append(Event("Warning", "DecisionError", message))
    return decision


async def _settle_keyed_runs(
    policy: Policy,
    status: dict[str, Any],
    body: Mapping[str, Any],
    known: dict[str, dict[str, str]],
    services: Services,
    logger: kopf.Logger,
) -> None:
    """Find or create each run whose key is in status but whose id is not (yet).

    ``known`` remembers the runs this process created or found, by run key: a status that does
    not show them yet (a stale event, a write that conflicted) costs no second KFP call, so a
    slow KFP cannot keep the handler from ever writing. A replaced entry is never created; if
    an earlier attempt did create it, it is found by name and gets its id, to be terminated.
    """
    active: list[dict[str, Any]] = status.get("active") or []
    pending = [e for e in active if not e.get("runId")]
    pipeline = (status.get("observations") or {}).get("pipeline") or {}
    if not pending or not pipeline.get("ok"):
        return
    resolved = ResolvedPipeline(
        pipeline["pipelineId"], pipeline["versionId"], pipeline["experimentId"]
    )
    uid = body["metadata"]["uid"]
    for entry in pending:
        if entry["runKey"] in known:
            entry.pop("launchError", None)
            entry.update(known[entry["runKey"]])
            continue
        now = services.clock()
        try:
            if entry.get("replaced"):
                run_id = await services.call("kfp", uid, services.launcher.find, entry["runName"])
                created = False
                if run_id is None:
                    if _no_create_in_flight(entry, now):
                        active.remove(entry)  # never created, and never will be
                    continue
            else:
                run_id, created = await services.call(
                    "kfp",
                    uid,
                    services.launcher.ensure,
                    entry["runName"],
                    resolved,
                    dict(entry.get("parameters") or {}),
                    policy.pipeline.service_account,
                )
        except Exception as exc:  # the key stays in status; the next tick retries
            metrics.ERRORS.labels("kfp").inc()
            error = launch_error(exc, now)
            if (entry.get("launchError") or {}).get("message") != error["message"]:
                _record(
                    body,
                    [Event("Warning", error["reason"], f"{entry['runName']}: {error['message']}")],
                )
            entry["launchError"] = error
            continue
        known[entry["runKey"]] = {"runId": run_id, "launchedTime": ts(now)}
        entry.pop("launchError", None)
        entry.update(known[entry["runKey"]])
        if entry.get("replaced"):
            continue
        outcome = "created" if created else "adopted"
        metrics.LAUNCHES.labels(outcome).inc()
        decided = parse_ts(entry.get("decidedTime"))
        if decided is not None:
            metrics.LAUNCH_LATENCY.observe(max(0.0, (now - decided).total_seconds()))
        message = f"{entry['runName']} ({outcome}) run {run_id}: {entry['reason']}"
        _record(body, [Event("Normal", "Launched", message)])
        logger.info("Run %s %s as %s: %s", entry["runName"], outcome, run_id, entry["reason"])


def launch_error(exc: BaseException, now: datetime) -> dict[str, str]:
    """Why a create failed: KFP could not be reached (or did not answer in time), or refused."""
    unreachable = isinstance(exc, OSError | TimeoutError | urllib3.exceptions.HTTPError)
    return {
        "reason": "KfpUnreachable" if unreachable else "LaunchFailed",
        "message": describe_error(exc),
        "time": ts(now),
    }


def _no_create_in_flight(entry: Mapping[str, Any], now: datetime) -> bool:
    """Whether a create this operator sent for the entry can no longer land in KFP.

    A create that timed out on our side may still be processed by KFP; it is settled once the
    client's whole timeout has passed again since.
    """
    attempted = parse_ts((entry.get("launchError") or {}).get("time"))
    return attempted is None or now >= attempted + timedelta(seconds=sum(KFP_TIMEOUT))


async def _terminate_replaced(
    status: Mapping[str, Any],
    read: Mapping[str, Any],
    uid: str,
    body: Mapping[str, Any],
    services: Services,
) -> None:
    """Terminate every replaced run not yet seen ending; what fails is tried again next tick."""
    observed = (read.get("observations") or {}).get("runs") or {}
    for entry in status.get("active") or []:
        run_id = entry.get("runId")
        seen = (observed.get(entry["runKey"]) or {}).get("state")
        if not (entry.get("replaced") and run_id) or seen in SUCCEEDED_STATES | FAILED_STATES:
            continue
        try:
            await services.call("kfp", uid, services.launcher.terminate, run_id)
        except Exception as exc:
            metrics.ERRORS.labels("kfp").inc()
            message = f"run {run_id}: {describe_error(exc)}; retrying"
            _record(body, [Event("Warning", "TerminateFailed", message)])


def _record(body: Mapping[str, Any], events: list[Event]) -> None:
    """Post events on the policy and log them, once the status they describe is written."""
    meta = body["metadata"]
    for event in events:
        if event.reason in ("Skipped", "Queued", "WouldTrigger", "MissedSchedule"):
            metrics.SKIPS.labels(event.reason).inc()
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        # The module logger, not kopf's object logger: that one would post it a second time.
        log.log(
            logging.WARNING if event.type == "Warning" else logging.INFO,
            "%s/%s %s: %s",
            meta.get("namespace"),
            meta["name"],
            event.reason,
            event.message,
        )


def status_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch from ``old`` to ``new`` status, top-level keys only, observations left alone.

    A ``None`` and an absent key are the same here: the API server drops nulls, and treating
    them as different would patch, and so wake the handler, forever.
    """
    changes = {k: v for k, v in new.items() if old.get(k) != v}
    changes.update({k: None for k in old if k not in new and k != "observations"})
    return {k: v for k, v in changes.items() if not (v is None and old.get(k) is None)}
