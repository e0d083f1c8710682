"""The kopf handlers (the imperative shell): gather observations, apply decisions.

Two handlers per RetrainPolicy, each the sole writer of its part of status:

* the timer :func:`poll` writes ``status.observations`` (sources, run states, clock ticks);
* the event handler :func:`reconcile` runs on every change, creates runs whose key is already in
  status, asks :func:`operators.decision.decide` what to do next, and writes the rest.

Exactly once: a firing's run key reaches status in one event; the run is created in the next
one, by key, after a lookup. A crash in between leaves the key in status, and the restarted
operator finds or creates that run, never a second one.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import boto3
import kopf

from flywheel.operators import metrics
from flywheel.operators.decision import Decision, decide, invalid, parse_ts, ts
from flywheel.operators.kfp_runs import ResolvedPipeline, RunLauncher, connect
from flywheel.operators.policy import GROUP, PLURAL, VERSION, InvalidPolicy, Policy, parse_policy
from flywheel.operators.poller import Services, observe

log = logging.getLogger(__name__)
# kopf fixes a timer's interval when the module is imported; the tests shorten it this way.
TICK_SECONDS = float(os.environ.get("FLYWHEEL_TICK_SECONDS", "10"))
FINALIZER = "flywheel.dev/retraining-operator"
PEERING = os.environ.get("FLYWHEEL_PEERING", "flywheel-retraining")


def default_services() -> Services:
    """Services from the environment: KFP from ``KF_PIPELINES_ENDPOINT``, AWS through IRSA."""
    clients: dict[tuple[str, str | None], Any] = {}

    def aws_client(service: str, region: str | None) -> Any:
        # boto3 clients are thread-safe once made; making them is not, so cache per region.
        if (service, region) not in clients:
            clients[service, region] = boto3.session.Session().client(service, region_name=region)
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
    settings.peering.name = PEERING
    settings.peering.mandatory = False  # without the peering object: warn, run standalone
    # Events are posted explicitly with kopf.event (which ignores this level), one per launch,
    # skip and error; of the logs, only kopf's own warnings and errors become events.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 30
    if getattr(memo, "services", None) is None:
        memo.services = default_services()
    memo.policies = {}
    objects_log = logging.getLogger("kopf.objects")
    if not any(isinstance(f, _QuietRoutine) for f in objects_log.filters):
        objects_log.addFilter(_QuietRoutine())


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account, else the kubeconfig named by ``KUBECONFIG`` when called.

    kopf's default goes through the kubernetes client, which reads ``KUBECONFIG`` once at
    import; ``--dev`` and the tests point it at the emulator later than that.
    """
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


class _QuietRoutine(logging.Filter):
    """Drop kopf's per-call success lines: with a timer per policy they are most of the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.INFO and record.getMessage() in ROUTINE)


ROUTINE = frozenset({"Timer 'poll' succeeded.", "Handler 'reconcile' succeeded."})


def _policy(memo: kopf.Memo, meta: kopf.Meta, spec: kopf.Spec) -> Policy:
    """The parsed spec, cached per uid and generation: the timer asks for it every tick."""
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


@kopf.timer(GROUP, VERSION, PLURAL, interval=TICK_SECONDS)
async def poll(
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Write what is new in the sources, the runs and the clock; decide nothing."""
    try:
        policy = _policy(memo, meta, spec)
    except InvalidPolicy:
        return  # reconcile() reports it; there is nothing valid to observe
    if policy.suspend and not status.get("active"):
        return
    updates = await observe(
        policy,
        status,
        uid=meta["uid"],
        generation=meta.get("generation", 1),
        services=memo.services,
    )
    if updates:
        patch.status["observations"] = updates


@kopf.on.event(GROUP, VERSION, PLURAL)
async def reconcile(
    type: str,
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """Create runs already keyed in status, then decide and record the next step."""
    services: Services = memo.services
    if type == "DELETED":
        memo.policies.pop(meta["uid"], None)
        services.pipeline_checks.pop(meta["uid"], None)
        return
    if meta.get("deletionTimestamp") or not spec:
        return
    original = dict(status)  # what the API has; the patch is the difference from this
    current = copy.deepcopy(original)
    generation = meta.get("generation", 1)
    try:
        policy = _policy(memo, meta, spec)
    except InvalidPolicy as exc:
        _apply(
            body,
            original,
            invalid(current, exc.errors, now=services.clock(), generation=generation),
            patch,
        )
        return
    await _create_keyed_runs(policy, current, body, services, logger)
    metrics.EVALUATIONS.inc()
    decision = decide(
        policy,
        current,
        annotations=meta.get("annotations", {}),
        now=services.clock(),
        generation=generation,
        uid=meta["uid"],
        name=meta["name"],
    )
    for run_id in decision.terminate:
        try:
            await services.call(services.launcher.terminate, run_id)
        except Exception as exc:  # the run ends anyway; record and go on
            metrics.ERRORS.labels("kfp").inc()
            kopf.event(
                body, type="Warning", reason="TerminateFailed", message=f"run {run_id}: {exc}"
            )
    _apply(body, original, decision, patch)


async def _create_keyed_runs(
    policy: Policy, status: dict[str, Any], body: kopf.Body, services: Services, logger: kopf.Logger
) -> None:
    """Find or create each run whose key is in status but whose id is not (yet)."""
    pending = [e for e in status.get("active") or [] if not e.get("runId")]
    pipeline = (status.get("observations") or {}).get("pipeline") or {}
    if not pending or not pipeline.get("ok"):
        return
    resolved = ResolvedPipeline(
        pipeline["pipelineId"], pipeline["versionId"], pipeline["experimentId"]
    )
    for entry in pending:
        try:
            run_id, created = await services.call(
                services.launcher.ensure,
                entry["runName"],
                resolved,
                dict(entry.get("parameters") or {}),
                policy.pipeline.service_account,
            )
        except Exception as exc:  # the key stays in status; the next tick retries
            metrics.ERRORS.labels("kfp").inc()
            kopf.event(
                body, type="Warning", reason="LaunchFailed", message=f"{entry['runName']}: {exc}"
            )
            continue
        now = services.clock()
        entry.update(runId=run_id, launchedTime=ts(now))
        outcome = "created" if created else "adopted"
        metrics.LAUNCHES.labels(outcome).inc()
        decided = parse_ts(entry.get("decidedTime"))
        if decided is not None:
            metrics.LAUNCH_LATENCY.observe(max(0.0, (now - decided).total_seconds()))
        kopf.event(
            body,
            type="Normal",
            reason="Launched",
            message=f"{entry['runName']} ({outcome}) run {run_id}: {entry['reason']}",
        )
        logger.info("Run %s %s as %s: %s", entry["runName"], outcome, run_id, entry["reason"])


def _apply(body: kopf.Body, old: Mapping[str, Any], decision: Decision, patch: kopf.Patch) -> None:
    """Record events and patch only the status fields that changed."""
    for event in decision.events:
        if event.reason in ("Skipped", "Queued", "WouldTrigger", "MissedSchedule"):
            metrics.SKIPS.labels(event.reason).inc()
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        # The module logger, not kopf's object logger: that one would post it a second time.
        log.log(
            logging.WARNING if event.type == "Warning" else logging.INFO,
            "%s/%s %s: %s",
            body.metadata.namespace,
            body.metadata.name,
            event.reason,
            event.message,
        )
    for key, value in status_changes(old, decision.status).items():
        patch.status[key] = value


def status_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch from ``old`` to ``new`` status, top-level keys only, observations left alone.

    A ``None`` and an absent key are the same here: the API server drops nulls, and treating
    them as different would patch, and so wake the handler, forever.
    """
    changes = {k: v for k, v in new.items() if old.get(k) != v}
    changes.update({k: None for k in old if k not in new and k != "observations"})
    return {k: v for k, v in changes.items() if not (v is None and old.get(k) is None)}
