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
import functools
import logging
import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import boto3
import botocore.config
import kopf

from flywheel.operators import leadership, metrics
from flywheel.operators.clock import system_clock
from flywheel.operators.decision import (
    FINISHED_STATES,
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
from flywheel.operators.launching import Launches, Outcome, launch_error, may_try
from flywheel.operators.pipeline_versions import VersionWatch, concerns, watched_namespace
from flywheel.operators.policy import (
    GROUP,
    PLURAL,
    VERSION,
    DeletionPolicy,
    InvalidPolicy,
    Manual,
    Policy,
    parse_policy,
    parsed_spec,
)
from flywheel.operators.poller import (
    POOL_SIZES,
    Services,
    describe_error,
    observe,
    seconds_until_due,
    widen_connection_pool,
)

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
        clock=system_clock(),
    )


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """All operator settings in one place."""
    settings.persistence.finalizer = FINALIZER
    # The Lease decides which replica acts (operators.leadership): kopf starts only once this
    # replica holds it, so kopf's own peering stays off.
    settings.peering.standalone = True
    # Events are posted explicitly with kopf.event (which ignores this level), one per launch,
    # skip and error; of the logs, only kopf's own warnings and errors become events.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 30
    if getattr(memo, "services", None) is None:
        memo.services = default_services()
    if memo.services.store is None:
        memo.services.store = PolicyStore(api_from_environment())
    _fence_writes(memo.services)
    memo.policies = {}
    memo.launched = {}  # by policy uid: run key -> the id and launch time of its KFP run
    memo.wakeups = {}  # by policy uid: set to wake the poller, which otherwise sleeps until due
    objects_log = logging.getLogger("kopf.objects")
    if not any(isinstance(f, _QuietRoutine) for f in objects_log.filters):
        objects_log.addFilter(_QuietRoutine())


def _fence_writes(services: Services) -> None:
    """Every write to Kubernetes or KFP first checks that this replica still leads."""
    if services.store is not None:
        leadership.guard_writes(services.store.api.api_client.rest_client)
    client = getattr(services.launcher, "client", None)
    if client is not None:  # kfp.Client: its service APIs share one REST client
        leadership.guard_writes(client._run_api.api_client.rest_client)


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


@kopf.on.startup()
async def start_watches(memo: kopf.Memo, **_: Any) -> None:
    """What runs beside the handlers: KFP calls in flight, the clock, the pipeline versions.

    Runs after :func:`configure`, on the operator's event loop.
    """
    memo.launches = Launches()
    memo.nonces = {}  # by policy uid, then annotation: the values seen, oldest first
    services: Services = memo.services
    # Every worker thread may hold a connection, and the version watch one more.
    widen_connection_pool(services.store.api.api_client.rest_client, POOL_SIZES["kube"] + 2)
    services.start_background(functools.partial(_wake_all, memo))
    memo.version_watch = VersionWatch(
        services.store.api,
        watched_namespace(),
        functools.partial(_version_changed, memo),
        asyncio.get_running_loop(),
    ).start()


@kopf.on.cleanup()
def stop_watches(memo: kopf.Memo, **_: Any) -> None:
    """Stop the PipelineVersion watch; :func:`close` stops the rest."""
    watch = getattr(memo, "version_watch", None)
    if watch is not None:
        watch.stop()


def _wake_all(memo: kopf.Memo) -> None:
    """Wake every poller: the clock stepped, or the pins changed."""
    for wake in memo.wakeups.values():
        wake.set()


def _version_changed(memo: kopf.Memo, version: Mapping[str, Any]) -> None:
    """A PipelineVersion was added, changed or deleted: the policies it may concern look their
    pipeline up again now, not at the next timed re-check."""
    for uid, (_, policy) in list(memo.policies.items()):
        if isinstance(policy, Policy) and concerns(policy, version):
            memo.services.pipeline_checks.pop(uid, None)
            wake = memo.wakeups.get(uid)
            if wake is not None:
                wake.set()


# Values of one nonce annotation remembered until a decision has taken them.
MAX_SEEN_NONCES = 100


def _note_nonces(memo: kopf.Memo, policy: Policy, meta: Mapping[str, Any]) -> None:
    """Remember each value of a manual trigger's annotation this process sees, in order: one
    overwritten before a decision took it still fires (``earlier_nonces`` of :func:`decide`)."""
    seen = memo.nonces.setdefault(meta["uid"], {})
    annotations = meta.get("annotations") or {}
    for trigger in policy.triggers:
        if isinstance(trigger.kind, Manual):
            value = annotations.get(trigger.kind.annotation)
            values = seen.setdefault(trigger.kind.annotation, [])
            if value and (not values or values[-1] != value):
                values.append(value)
                del values[:-MAX_SEEN_NONCES]


def _earlier_nonces(memo: kopf.Memo, meta: Mapping[str, Any]) -> dict[str, list[str]]:
    annotations = meta.get("annotations") or {}
    return {
        key: [v for v in values if v != annotations.get(key)]
        for key, values in memo.nonces.get(meta["uid"], {}).items()
    }


def _forget_taken_nonces(
    memo: kopf.Memo, policy: Policy, uid: str, status: Mapping[str, Any]
) -> None:
    """Drop remembered values that a written decision took (they are in ``recentNonces``)."""
    seen = memo.nonces.get(uid, {})
    states = {t.get("name"): t for t in status.get("triggers") or []}
    for trigger in policy.triggers:
        if isinstance(trigger.kind, Manual) and trigger.kind.annotation in seen:
            taken = set((states.get(trigger.name) or {}).get("recentNonces") or [])
            values = seen[trigger.kind.annotation]
            values[:] = [v for v in values if v not in taken]


class _QuietRoutine(logging.Filter):
    """Drop kopf's per-call success lines: with a handler call per change they are most of the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.INFO and record.getMessage() in ROUTINE)


ROUTINE = frozenset({"Handler 'reconcile' succeeded.", "Daemon 'poll' succeeded."})


def _policy(memo: kopf.Memo, meta: kopf.Meta, spec: kopf.Spec) -> Policy:
    """The parsed spec, cached per uid and generation: the poller asks for it on every wake-up."""
    return parsed_spec(memo.policies, meta, spec, parse_policy)


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
    current: Mapping[str, Any] | None = status
    if not (policy.suspend and not status.get("active")):
        try:
            current = await _observe_and_write(policy, status, meta, services)
        except Unavailable as exc:
            logger.warning("Observations not written, trying again: %s", exc)
            return TICK_SECONDS
        except Conflict as exc:
            logger.debug("Observing again on the next tick: %s", exc)
            return TICK_SECONDS
        if current is None:
            return None  # gone
    elif not status.get("active"):
        return None
    return seconds_until_due(
        policy,
        current,
        generation=meta.get("generation", 1),
        now=services.clock(),
        tick=TICK_SECONDS,
    )


async def _observe_and_write(
    policy: Policy, status: kopf.Status, meta: kopf.Meta, services: Services
) -> Mapping[str, Any] | None:
    """Observe from one version of the object and write what is new onto that very version.

    Readings are relative to what status already holds (a window of values, a watermark, the
    states of runs), so they may land only on the version they were made from: a 409 means
    another write came first (the event handler's decision, or, for a replica that stopped
    leading while it observed, the new leader's), and the object is read and observed again,
    never written over with the old readings. Returns the status as stored (until the live
    view catches up with the watch, the truth), ``None`` once the object is gone.
    """
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    generation = meta.get("generation", 1)
    # The live view changes under await: take the version and its status together, now.
    version, current = meta["resourceVersion"], copy.deepcopy(dict(status))
    for _ in range(MAX_ATTEMPTS):
        updates = await observe(policy, current, uid=uid, generation=generation, services=services)
        if not updates:
            return current
        try:
            written = await services.call(
                "kube", uid, services.store.patch_observations, namespace, name, version, updates
            )
        except Conflict:
            metrics.ERRORS.labels("conflict").inc()
            if "pipeline" in updates:
                services.pipeline_checks.pop(uid, None)  # not written: look it up again
            obj = await services.call("kube", uid, services.store.read, namespace, name)
            if obj is None:
                return None
            if obj["metadata"].get("generation", 1) != generation:
                raise Conflict(f"{namespace}/{name}: its spec changed meanwhile") from None
            version, current = obj["metadata"]["resourceVersion"], obj.get("status") or {}
            continue
        return None if written is None else written.get("status") or {}
    raise Conflict(f"{namespace}/{name}: observations refused {MAX_ATTEMPTS} times")


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
    # A create in flight sees the deletion and stops, or lands and is found below.
    await memo.launches.wait(uid)
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
        if run_id is None or state in FINISHED_STATES:
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
        memo.nonces.pop(meta["uid"], None)
        memo.launches.forget(meta["uid"])
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
        _note_nonces(memo, policy, meta)
        current = copy.deepcopy(status)
        known = memo.launched.setdefault(meta["uid"], {})
        _settle_keyed_runs(policy, current, obj, known, services, memo, logger)
        metrics.EVALUATIONS.inc()
        decision = decide_or_report(
            policy,
            current,
            annotations=meta.get("annotations") or {},
            now=now,
            generation=generation,
            uid=meta["uid"],
            name=meta["name"],
            earlier_nonces=_earlier_nonces(memo, meta),
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
    record_events(obj, decision.events)
    cached = memo.policies.get(meta["uid"])
    if cached is not None and isinstance(cached[1], Policy):
        _forget_taken_nonces(memo, cached[1], meta["uid"], decision.status)
        # The keys are in status now: create their runs at once, not after the watch event.
        for entry in decision.launches:
            _start_create(cached[1], entry, status, meta, services, memo, logger, fresh=True)
    _terminate_replaced(decision.status, status, meta["uid"], obj, services, memo)


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


def _settle_keyed_runs(
    policy: Policy,
    status: dict[str, Any],
    body: Mapping[str, Any],
    known: dict[str, dict[str, str]],
    services: Services,
    memo: kopf.Memo,
    logger: kopf.Logger,
) -> None:
    """Bring in the runs of keys in status that have no run id yet; start their creates.

    Never waits for KFP: each key's create (or, for a replaced entry, its lookup) runs in a
    task of its own (:mod:`operators.launching`), and its end decides again, which lands here
    and records the run. ``known`` remembers the runs this process created or found, by run
    key: a status that does not show them yet (a stale event, a write that conflicted) costs
    no second KFP call. A replaced entry is never created; if an earlier attempt did create
    it, it is found by name and gets its id, to be terminated.
    """
    active: list[dict[str, Any]] = status.get("active") or []
    pending = [e for e in active if not e.get("runId")]
    pipeline = (status.get("observations") or {}).get("pipeline") or {}
    if not pending or not pipeline.get("ok"):
        return
    meta = body["metadata"]
    uid, generation = meta["uid"], meta.get("generation", 1)
    launches: Launches = memo.launches
    now = services.clock()
    for entry in pending:
        if entry["runKey"] in known:
            entry.pop("launchError", None)
            entry.update(known[entry["runKey"]])
            continue
        key = (uid, entry["runKey"])
        outcome = launches.take(key)
        # This process's last error for the key is newer than status, should a write be lost.
        last = launches.errors.get(key) or entry.get("launchError")
        if outcome is None:
            if last:
                entry["launchError"] = last
            if may_try(last, now, generation):
                _start_create(policy, entry, status, meta, services, memo, logger)
            continue
        if outcome.error is not None:  # the key stays in status; retried, or backed off
            metrics.ERRORS.labels("kfp").inc()
            previous = last or {}
            error = launch_error(
                outcome.error, describe_error(outcome.error), now, generation, previous
            )
            if (previous.get("reason"), previous.get("message")) != (
                error["reason"],
                error["message"],
            ):
                record_events(
                    body,
                    [Event("Warning", error["reason"], f"{entry['runName']}: {error['message']}")],
                )
            if error["reason"] == "KfpRefused":
                services.pipeline_checks.pop(uid, None)  # its version may be gone: look again
            entry["launchError"] = launches.errors[key] = error
            continue
        launches.errors.pop(key, None)
        if outcome.run_id is None:
            if entry.get("replaced") and _no_create_in_flight(entry, now):
                active.remove(entry)  # never created, and never will be
            continue
        known[entry["runKey"]] = {"runId": outcome.run_id, "launchedTime": ts(now)}
        entry.pop("launchError", None)
        entry.update(known[entry["runKey"]])
        if entry.get("replaced"):
            continue
        outcome_name = "created" if outcome.created else "adopted"
        metrics.LAUNCHES.labels(outcome_name).inc()
        decided = parse_ts(entry.get("decidedTime"))
        if decided is not None:
            metrics.LAUNCH_LATENCY.observe(max(0.0, (now - decided).total_seconds()))
        message = f"{entry['runName']} ({outcome_name}) run {outcome.run_id}: {entry['reason']}"
        record_events(body, [Event("Normal", "Launched", message)])
        logger.info(
            "Run %s %s as %s: %s", entry["runName"], outcome_name, outcome.run_id, entry["reason"]
        )


def _start_create(
    policy: Policy,
    entry: Mapping[str, Any],
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
    services: Services,
    memo: kopf.Memo,
    logger: kopf.Logger,
    fresh: bool = False,
) -> None:
    """Start the entry's create (a lookup, if replaced) unless one is in flight; its end
    decides again. Nothing starts before the pipeline is resolved.

    ``fresh``: the key has just been written by this very handler, conditionally on a version
    of the policy without it and without a deletion: no run can have its name yet, and none
    is looked up first. Every later attempt looks first.
    """
    pipeline = (status.get("observations") or {}).get("pipeline") or {}
    if not pipeline.get("ok"):
        return
    resolved = ResolvedPipeline(
        pipeline["pipelineId"], pipeline["versionId"], pipeline["experimentId"]
    )
    key = (meta["uid"], entry["runKey"])
    memo.launches.start(
        key,
        functools.partial(
            _create_or_find, dict(entry), resolved, policy, dict(meta), services, fresh
        ),
        functools.partial(_decide_again, dict(meta), memo, logger, key),
    )


async def _create_or_find(
    entry: Mapping[str, Any],
    resolved: ResolvedPipeline,
    policy: Policy,
    meta: Mapping[str, Any],
    services: Services,
    fresh: bool = False,
) -> Outcome:
    """Find the entry's run by name; create it unless found, replaced, or no longer wanted.

    Right before the create the policy is read as it is now: an event older than the start of
    its deletion (or than the key's removal) must not create a run. A ``fresh`` key (see
    :func:`_start_create`) is created at once.
    """
    uid = meta["uid"]
    if fresh:
        return Outcome(await _create(entry, resolved, policy, uid, services), created=True)
    run_id = await services.call("kfp", uid, services.launcher.find, entry["runName"])
    if run_id is not None or entry.get("replaced"):
        return Outcome(run_id)
    current = await services.call("kube", uid, services.store.read, meta["namespace"], meta["name"])
    if current is None or current["metadata"].get("deletionTimestamp"):
        return Outcome()
    wanted = [
        e
        for e in (current.get("status") or {}).get("active") or []
        if e.get("runKey") == entry["runKey"] and not e.get("replaced")
    ]
    if not wanted:
        return Outcome()
    run_id = await _create(entry, resolved, policy, uid, services)
    return Outcome(run_id, created=True, policy=current)


async def _create(
    entry: Mapping[str, Any],
    resolved: ResolvedPipeline,
    policy: Policy,
    uid: str,
    services: Services,
) -> str:
    return str(
        await services.call(
            "kfp",
            uid,
            services.launcher.create,
            entry["runName"],
            resolved,
            dict(entry.get("parameters") or {}),
            policy.pipeline.service_account,
        )
    )


async def _decide_again(
    meta: Mapping[str, Any],
    memo: kopf.Memo,
    logger: kopf.Logger,
    key: tuple[str, str],
    outcome: Outcome,
) -> None:
    """After a KFP call of the policy ended: decide on its latest state, as for an event,
    unless an event's decision has taken the outcome already (one write, not two racing).

    The policy as read right before the create is the latest state as far as anyone knows; if
    it moved on since, the write answers 409 and the handler reads again.
    """
    if not memo.launches.waiting(key):
        return
    services: Services = memo.services
    obj = outcome.policy or await services.call(
        "kube", meta["uid"], services.store.read, meta["namespace"], meta["name"]
    )
    if not memo.launches.waiting(key):
        return  # taken while this read was under way
    if obj is not None and obj["metadata"].get("uid") == meta["uid"]:
        await reconcile(type="MODIFIED", body=obj, meta=obj["metadata"], memo=memo, logger=logger)


def _no_create_in_flight(entry: Mapping[str, Any], now: datetime) -> bool:
    """Whether a create this operator sent for the entry can no longer land in KFP.

    A create that timed out on our side may still be processed by KFP; it is settled once the
    client's whole timeout has passed again since.
    """
    attempted = parse_ts((entry.get("launchError") or {}).get("time"))
    return attempted is None or now >= attempted + timedelta(seconds=sum(KFP_TIMEOUT))


def _terminate_replaced(
    status: Mapping[str, Any],
    read: Mapping[str, Any],
    uid: str,
    body: Mapping[str, Any],
    services: Services,
    memo: kopf.Memo,
) -> None:
    """Terminate every replaced run not yet seen ending, each in a task of its own (one per
    run at a time); what fails is tried again next tick."""
    observed = (read.get("observations") or {}).get("runs") or {}
    for entry in status.get("active") or []:
        run_id = entry.get("runId")
        seen = (observed.get(entry["runKey"]) or {}).get("state")
        if not (entry.get("replaced") and run_id) or seen in FINISHED_STATES:
            continue
        memo.launches.start(
            (uid, "terminate", run_id),
            functools.partial(_terminate, run_id, uid, body, services),
            keep=False,
        )


async def _terminate(run_id: str, uid: str, body: Mapping[str, Any], services: Services) -> Outcome:
    try:
        await services.call("kfp", uid, services.launcher.terminate, run_id)
    except Exception as exc:
        metrics.ERRORS.labels("kfp").inc()
        message = f"run {run_id}: {describe_error(exc)}; retrying"
        record_events(body, [Event("Warning", "TerminateFailed", message)])
    return Outcome(run_id)


def record_events(body: Mapping[str, Any], events: list[Event]) -> None:
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


# ModelDeployments share this process, its Lease, its clients and its KFP machinery; their
# handlers register with kopf when this module is imported, after the ones above.
from flywheel.operators import deployment_handlers  # noqa: E402, F401
