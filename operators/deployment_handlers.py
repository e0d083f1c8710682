"""kopf wiring of ModelDeployments (the imperative shell around :mod:`operators.rollout`).

The same shape, and the same machinery, as RetrainPolicies (:mod:`operators.handlers`):

* the daemon :func:`poll_deployment` writes only ``status.observations`` (each stage's target
  version in the registry, what its endpoint serves, its soak alarms, its rollout run's state),
  onto the ``resourceVersion`` it observed from;
* the event handler :func:`reconcile_deployment` decides on every change and writes the rest
  with the ``resourceVersion`` it decided on; a 409 reads again and decides again;
* a rollout's run key reaches status before its KFP run is created, in a task of its own
  (:class:`operators.launching.Launches`); every later attempt looks the run up by name first,
  and right before a create the resource is read again. Leader election and the write fence
  are the process's (:mod:`operators.leadership`): one replica acts.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import kopf

from flywheel.operators import metrics
from flywheel.operators.decision import Event, invalid, parse_ts
from flywheel.operators.deployment_spec import (
    GROUP,
    PLURAL,
    VERSION,
    Deployment,
    parse_deployment,
)
from flywheel.operators.handlers import (
    FINALIZER,
    MAX_ATTEMPTS,
    TICK_SECONDS,
    record_events,
    status_changes,
)
from flywheel.operators.kfp_runs import ResolvedPipeline
from flywheel.operators.kube import Conflict, PolicyStore, Unavailable
from flywheel.operators.launching import Outcome, launch_error, may_try
from flywheel.operators.policy import InvalidPolicy, PipelineRef, parsed_spec
from flywheel.operators.poller import Services, describe_error
from flywheel.operators.rollout import decide_rollout
from flywheel.operators.serving_reads import alarms_ok, served, target

log = logging.getLogger(__name__)


@kopf.on.startup()
def configure_deployments(memo: kopf.Memo, **_: Any) -> None:
    """ModelDeployment reads and writes go through the RetrainPolicy store's fenced client."""
    memo.deployment_store = PolicyStore(memo.services.store.api, plural=PLURAL)
    memo.deployments = {}  # by uid: (uid, generation) and the parsed spec or its error
    memo.deployment_runs = {}  # by uid: run key -> run id of the rollouts this process made
    memo.deployment_wakeups = {}


def _deployment(memo: kopf.Memo, meta: Mapping[str, Any], spec: Mapping[str, Any]) -> Deployment:
    return parsed_spec(memo.deployments, meta, spec, parse_deployment)


# ---- observations -------------------------------------------------------------------------


async def observe_stages(
    deployment: Deployment, status: Mapping[str, Any], uid: str, services: Services
) -> dict[str, Any]:
    """Every stage's observations, the run states first and the endpoints after them: an ended
    run's endpoint is read after its end."""
    sagemaker = services.aws_client("sagemaker", deployment.region)
    entries = {s.get("name"): s for s in status.get("stages") or []}
    stages: dict[str, Any] = {}
    for index, stage in enumerate(deployment.stages):
        entry = entries.get(stage.name) or {}
        seen: dict[str, Any] = {}
        rollout = entry.get("rollout") or {}
        if rollout.get("runId"):
            state = await services.call("kfp", uid, services.launcher.state, rollout["runId"])
            seen["runs"] = {rollout["runKey"]: {"state": state.state}}
        seen["target"] = await services.call(
            "aws", uid, target, sagemaker, deployment.model, stage, f"spec.stages[{index}]"
        )
        seen["endpoint"] = await services.call("aws", uid, served, sagemaker, stage.endpoint_name)
        if stage.soak_alarms:
            cloudwatch = services.aws_client("cloudwatch", deployment.region)
            seen["alarms"] = await services.call(
                "aws", uid, alarms_ok, cloudwatch, list(stage.soak_alarms)
            )
        stages[stage.name] = seen
    return {"stages": stages, "soaked": _soaked(deployment, entries, services)}


def _soaked(
    deployment: Deployment, entries: Mapping[str, Mapping[str, Any]], services: Services
) -> list[str]:
    """The stages whose soak in the earlier stage is over: a change here wakes a decision."""
    now = services.clock()
    done = []
    for stage in deployment.stages:
        earlier = entries.get(stage.promote_from or "") or {}
        deployed = parse_ts(earlier.get("deployedTime"))
        if deployed is not None and now >= deployed + timedelta(minutes=stage.soak_minutes):
            done.append(stage.name)
    return done


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=5)
async def poll_deployment(
    stopped: kopf.DaemonStopped,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """Write what is new in the registry, the endpoints, the alarms and the runs; decide nothing."""
    services: Services = memo.services
    store: PolicyStore = memo.deployment_store
    uid = meta["uid"]
    wake = memo.deployment_wakeups.setdefault(uid, asyncio.Event())
    while not stopped:
        wake.clear()
        version, current = meta["resourceVersion"], copy.deepcopy(dict(status))
        try:
            deployment = _deployment(memo, meta, spec)
            seen = await observe_stages(deployment, current, uid, services)
            if seen != current.get("observations"):
                await services.call(
                    "kube",
                    uid,
                    store.patch_observations,
                    meta["namespace"],
                    meta["name"],
                    version,
                    seen,
                )
        except InvalidPolicy:
            pass  # reconcile_deployment reports it; nothing valid to observe
        except Conflict:
            metrics.ERRORS.labels("conflict").inc()  # observed from an old version: again
        except Exception as exc:  # an AWS or KFP error: said once per tick, tried again
            logger.warning("Observations not written, trying again: %s", describe_error(exc))
        stop = asyncio.ensure_future(stopped.wait())
        woken = asyncio.ensure_future(wake.wait())
        await asyncio.wait({stop, woken}, timeout=TICK_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        for waiter in (stop, woken):
            waiter.cancel()
    memo.deployment_wakeups.pop(uid, None)


# ---- decisions ----------------------------------------------------------------------------


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def delete_deployment(meta: kopf.Meta, memo: kopf.Memo, **_: Any) -> None:
    """A deleted ModelDeployment leaves its endpoints serving; a create in flight sees the
    deletion and stops, or lands and is left alone."""
    await memo.launches.wait(meta["uid"])


@kopf.on.event(GROUP, VERSION, PLURAL)
async def reconcile_deployment(
    type: str, body: kopf.Body, meta: kopf.Meta, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Decide on the latest state and write the decision onto that very state (409: again)."""
    services: Services = memo.services
    store: PolicyStore = memo.deployment_store
    uid = meta["uid"]
    if type == "DELETED":
        for kept in (memo.deployments, memo.deployment_runs):
            kept.pop(uid, None)
        memo.launches.forget(uid)
        services.forget(uid)
        return
    if FINALIZER not in (meta.get("finalizers") or []):
        return  # kopf's finalizer arrives first; its event brings this handler back
    obj: dict[str, Any] | None = copy.deepcopy(dict(body))
    for attempt in range(MAX_ATTEMPTS):
        try:
            if obj is None:
                obj = await services.call("kube", uid, store.read, meta["namespace"], meta["name"])
            if obj is None or obj["metadata"].get("deletionTimestamp") or not obj.get("spec"):
                return
            await _reconcile_once(obj, services, memo, logger)
            return
        except (Conflict, Unavailable) as exc:
            metrics.ERRORS.labels("conflict" if isinstance(exc, Conflict) else "kubernetes").inc()
            logger.debug("Deciding again on the latest state: %s", exc)
            obj = None
            await asyncio.sleep(min(0.05 * 2**attempt, 2.0))
    logger.error("Gave up writing the decision after %d attempts", MAX_ATTEMPTS)


async def _reconcile_once(
    obj: dict[str, Any], services: Services, memo: kopf.Memo, logger: kopf.Logger
) -> None:
    meta = obj["metadata"]
    status: dict[str, Any] = obj.get("status") or {}
    generation = meta.get("generation", 1)
    now = services.clock()
    deployment: Deployment | None = None
    try:
        deployment = _deployment(memo, meta, obj["spec"])
    except InvalidPolicy as exc:
        decision = invalid(status, exc.errors, now=now, generation=generation)
        launches: list[dict[str, Any]] = []
    else:
        current = copy.deepcopy(status)
        _settle_rollouts(deployment, current, obj, services, memo)
        rolled = decide_rollout(
            deployment,
            current,
            annotations=meta.get("annotations") or {},
            now=now,
            generation=generation,
            uid=meta["uid"],
            name=meta["name"],
        )
        decision, launches = rolled, rolled.launches
    changes = status_changes(status, decision.status)
    if changes:
        written = await services.call(
            "kube",
            meta["uid"],
            memo.deployment_store.patch_status,
            meta["namespace"],
            meta["name"],
            meta["resourceVersion"],
            changes,
        )
        if written is None:
            return
        wake = memo.deployment_wakeups.get(meta["uid"])
        if wake is not None:
            wake.set()
    record_events(obj, decision.events)
    if deployment is not None:
        # The keys are in status now, written onto a version without them: create at once.
        for rollout in launches:
            _start_create(deployment, rollout, meta, services, memo, logger, fresh=True)


def _settle_rollouts(
    deployment: Deployment,
    status: dict[str, Any],
    body: Mapping[str, Any],
    services: Services,
    memo: kopf.Memo,
) -> None:
    """Bring the run ids of rollouts in status that have none yet; start their creates."""
    meta = body["metadata"]
    uid, generation = meta["uid"], meta.get("generation", 1)
    known = memo.deployment_runs.setdefault(uid, {})
    now = services.clock()
    for entry in status.get("stages") or []:
        rollout = entry.get("rollout")
        if not rollout or rollout.get("runId"):
            continue
        if rollout["runKey"] in known:
            rollout.pop("launchError", None)
            rollout["runId"] = known[rollout["runKey"]]
            continue
        key = (uid, rollout["runKey"])
        outcome = memo.launches.take(key)
        last = memo.launches.errors.get(key) or rollout.get("launchError")
        if outcome is None:
            if may_try(last, now, generation):
                _start_create(deployment, {"stage": entry["name"], **rollout}, meta, services, memo)
            continue
        if outcome.error is not None:
            metrics.ERRORS.labels("kfp").inc()
            error = launch_error(
                outcome.error, describe_error(outcome.error), now, generation, last
            )
            if (last or {}).get("message") != error["message"]:
                record_events(
                    body,
                    [
                        Event(
                            "Warning", error["reason"], f"{rollout['runName']}: {error['message']}"
                        )
                    ],
                )
            rollout["launchError"] = memo.launches.errors[key] = error
            continue
        memo.launches.errors.pop(key, None)
        if outcome.run_id is None:
            continue  # the resource moved on before the create: nothing was created
        known[rollout["runKey"]] = outcome.run_id
        rollout.pop("launchError", None)
        rollout["runId"] = outcome.run_id
        how = "created" if outcome.created else "adopted"
        metrics.LAUNCHES.labels(how).inc()
        message = f"{entry['name']}: {rollout['runName']} ({how}) run {outcome.run_id}"
        record_events(body, [Event("Normal", "Launched", message)])


def _start_create(
    deployment: Deployment,
    rollout: Mapping[str, Any],
    meta: Mapping[str, Any],
    services: Services,
    memo: kopf.Memo,
    logger: kopf.Logger | logging.Logger = log,
    fresh: bool = False,
) -> None:
    key = (meta["uid"], rollout["runKey"])
    memo.launches.start(
        key,
        functools.partial(
            _create_or_find, dict(rollout), deployment, dict(meta), services, memo, fresh
        ),
        functools.partial(_decide_again, dict(meta), memo, logger, key),
    )


def run_parameters(deployment: Deployment, stage_name: str, arn: str) -> dict[str, Any]:
    """The flywheel-deployment pipeline's parameters for one stage's rollout."""
    stage = next(s for s in deployment.stages if s.name == stage_name)
    compute = dict(deployment.compute_config)
    if deployment.region and "region" not in compute:
        compute["region"] = deployment.region
    return {
        "compute_config": compute,
        "model_package_arn": arn,
        "endpoint_name": stage.endpoint_name,
        "instance_type": stage.instance_type,
        "instance_count": stage.instance_count,
        "rollback_alarms": list(stage.rollback_alarms),
        "traffic_routing": dict(stage.traffic),
    }


async def _create_or_find(
    rollout: Mapping[str, Any],
    deployment: Deployment,
    meta: Mapping[str, Any],
    services: Services,
    memo: kopf.Memo,
    fresh: bool,
) -> Outcome:
    """Find the rollout's run by name; create it unless found or no longer wanted.

    A ``fresh`` key was just written onto a version without it: no run can have its name yet.
    Otherwise the resource is read right before the create: a deletion, or a key that left
    status, creates nothing.
    """
    uid = meta["uid"]
    ref = PipelineRef(
        deployment.pipeline,
        deployment.pipeline_version,
        None,
        deployment.experiment,
        deployment.service_account,
        {},
    )
    resolved: ResolvedPipeline = await services.call("kfp", uid, services.launcher.resolve, ref)
    current = None
    if not fresh:
        run_id = await services.call("kfp", uid, services.launcher.find, rollout["runName"])
        if run_id is not None:
            return Outcome(run_id)
        store: PolicyStore = memo.deployment_store
        current = await services.call("kube", uid, store.read, meta["namespace"], meta["name"])
        if current is None or current["metadata"].get("deletionTimestamp"):
            return Outcome()
        wanted = [
            s
            for s in (current.get("status") or {}).get("stages") or []
            if (s.get("rollout") or {}).get("runKey") == rollout["runKey"]
        ]
        if not wanted:
            return Outcome()
    run_id = await services.call(
        "kfp",
        uid,
        services.launcher.create,
        rollout["runName"],
        resolved,
        run_parameters(deployment, rollout["stage"], rollout["modelPackageArn"]),
        deployment.service_account,
    )
    return Outcome(str(run_id), created=True, policy=current)


async def _decide_again(
    meta: Mapping[str, Any],
    memo: kopf.Memo,
    logger: kopf.Logger | logging.Logger,
    key: tuple[str, str],
    outcome: Outcome,
) -> None:
    """After a create ended: decide on the latest state, unless an event took the outcome."""
    if not memo.launches.waiting(key):
        return
    services: Services = memo.services
    store: PolicyStore = memo.deployment_store
    obj = outcome.policy or await services.call(
        "kube", meta["uid"], store.read, meta["namespace"], meta["name"]
    )
    if not memo.launches.waiting(key) or obj is None:
        return
    if obj["metadata"].get("uid") == meta["uid"]:
        await reconcile_deployment(
            type="MODIFIED",
            body=obj,
            meta=obj["metadata"],
            memo=memo,
            logger=logger,
        )
