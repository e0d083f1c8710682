"""The pure rollout decision of a ModelDeployment: spec + status + observations + clock in, new
status + the runs to launch out.

Per stage, in order: follow the rollout in flight (its KFP run's state and what the endpoint
serves afterwards), or, when none is, compare the target version with the served one and launch
a rollout if the promotion gates allow. A rollout is recorded in status (its run key and run
name) before its run is created, exactly as a RetrainPolicy firing is, so a crash in between
leaves the key for the restarted operator to adopt or create, never a second run.

Rules a reader of status can rely on:

* *Once per change*: a rollout's run key hashes the resource's uid, the stage, the stage's
  rollout count and the version; the count is in status, written conditionally.
* *No retry loop*: a version SageMaker rolled back (its run failed and the endpoint still serves
  another version) or whose deploy failed is ``blocked`` for the stage: it is not tried again
  until the target moves to another version (a new commit, a newer approval).
* *Rollback is a deploy*: a target the stage served before (a revert in git) is deployed without
  promotion gates; it is the known-good state.
* *Promotion gates* (with ``promoteFrom``): the earlier stage has the version Deployed, for
  ``soakMinutes``, with every ``soakAlarms`` alarm not in ALARM, and (``requiresApproval``) the
  annotation ``flywheel.dev/approve.<stage>`` names the version.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flywheel.operators.decision import Event, parse_ts, run_key, set_condition, ts
from flywheel.operators.deployment_spec import Deployment, Stage

# KFP states after which a run does nothing more (DELETED: gone from KFP while followed).
ENDED_STATES = frozenset({"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED", "DELETED"})
STATE_CONDITIONS = ("Deploying", "Deployed", "RolledBack", "AwaitingApproval", "Failed")
HISTORY_LIMIT = 10


@dataclass(frozen=True)
class RolloutDecision:
    status: dict[str, Any]  # the whole new status, less `observations`
    launches: list[dict[str, Any]] = field(default_factory=list)  # (stage name, rollout) pairs
    events: list[Event] = field(default_factory=list)


def rollout_name(deployment_name: str, stage: str, key: str) -> str:
    """The KFP run's display name: carries the key so that a restart finds the run."""
    return f"{deployment_name[:180]}-{stage}-{key}"


def decide_rollout(
    deployment: Deployment,
    status: Mapping[str, Any],
    *,
    annotations: Mapping[str, str],
    now: datetime,
    generation: int,
    uid: str,
    name: str,
) -> RolloutDecision:
    """Decide every stage, in order; a stage's promotion sees the earlier stages as decided now."""
    new = {k: copy.deepcopy(v) for k, v in status.items() if k != "observations"}
    observed = (status.get("observations") or {}).get("stages") or {}
    before = {s.get("name"): s for s in status.get("stages") or []}
    decided: dict[str, dict[str, Any]] = {}
    launches: list[dict[str, Any]] = []
    events: list[Event] = []
    for stage in deployment.stages:
        entry = copy.deepcopy(before.get(stage.name) or {"name": stage.name})
        entry["endpoint"] = stage.endpoint_name
        _StageDecider(stage, entry, observed.get(stage.name) or {}, now, generation).decide(
            decided, annotations, uid, name, launches, events
        )
        decided[stage.name] = entry
    new["stages"] = list(decided.values())
    new["observedGeneration"] = generation
    new["summary"] = ", ".join(
        f"{s['name']}={s.get('servedVersion', '-')} ({s.get('state', 'Pending')})"
        for s in new["stages"]
    )
    conditions = new.setdefault("conditions", [])
    for kind in ("Deploying", "RolledBack", "AwaitingApproval", "Failed"):
        stages = [s["name"] for s in new["stages"] if s.get("state") == kind]
        messages = [
            f"{s['name']}: {s.get('message', '')}" for s in new["stages"] if s.get("state") == kind
        ]
        set_condition(
            conditions,
            kind,
            bool(stages),
            kind if stages else "None",
            "; ".join(messages),
            now,
            generation,
        )
    ready = all(s.get("state") == "Deployed" for s in new["stages"])
    waiting = [s["name"] for s in new["stages"] if s.get("state") != "Deployed"]
    set_condition(
        conditions,
        "Ready",
        ready,
        "AllStagesDeployed" if ready else "StagesNotDeployed",
        "every stage serves its target version" if ready else f"not deployed: {', '.join(waiting)}",
        now,
        generation,
    )
    return RolloutDecision(status=new, launches=launches, events=events)


class _StageDecider:
    def __init__(
        self,
        stage: Stage,
        entry: dict[str, Any],
        observed: Mapping[str, Any],
        now: datetime,
        generation: int,
    ) -> None:
        self.stage = stage
        self.entry = entry
        self.observed = observed
        self.now = now
        self.generation = generation
        self.endpoint = observed.get("endpoint") or {}

    def _set(self, state: str, reason: str, message: str) -> None:
        self.entry.update(state=state, reason=reason, message=message)
        conditions = self.entry.setdefault("conditions", [])
        for kind in STATE_CONDITIONS:
            on = kind == state
            set_condition(
                conditions,
                kind,
                on,
                reason if on else "None",
                message if on else "",
                self.now,
                self.generation,
            )

    def decide(
        self,
        decided: Mapping[str, Mapping[str, Any]],
        annotations: Mapping[str, str],
        uid: str,
        name: str,
        launches: list[dict[str, Any]],
        events: list[Event],
    ) -> None:
        target = self.observed.get("target") or {}
        if target.get("version") is not None:
            self.entry["targetVersion"] = target["version"]
        if self.entry.get("rollout"):
            self._follow(events)
            return
        if not target.get("ok"):
            if target.get("reason") in ("NoApprovedVersion", "NotApproved"):
                self._set("Pending", target["reason"], target.get("message", ""))
            elif target:
                self._set(
                    "Failed", target.get("reason", "TargetUnknown"), target.get("message", "")
                )
            else:
                self._set("Pending", "NotObservedYet", "the target version is being looked up")
            return
        version = int(target["version"])
        blocked = self.entry.get("blocked") or {}
        if blocked and blocked.get("version") != version:
            self.entry.pop("blocked")  # the target moved on: a later return is a new attempt
            blocked = {}
        served = self.endpoint.get("servedVersion")
        if served is not None:
            self.entry["servedVersion"] = served
        if served == version:
            if self.entry.get("deployedVersion") != version:
                self.entry.update(deployedVersion=version, deployedTime=ts(self.now))
            self._set(
                "Deployed", "Serving", f"version {version} serves on {self.stage.endpoint_name}"
            )
            return
        if blocked:
            self._set(blocked["reason"], blocked["reason"], blocked["message"])
            return
        waiting = self._gate(version, decided, annotations)
        if waiting is not None:
            self._set(*waiting)
            return
        count = int(self.entry.get("rollouts", 0)) + 1
        key = run_key(uid, self.stage.name, f"{count}:{version}")
        rollout = {
            "runKey": key,
            "runName": rollout_name(name, self.stage.name, key),
            "version": version,
            "modelPackageArn": target["arn"],
            "fromVersion": served,
            "decidedTime": ts(self.now),
        }
        self.entry.update(rollouts=count, rollout=rollout)
        launches.append({"stage": self.stage.name, **rollout})
        message = (
            f"deploying version {version} to {self.stage.endpoint_name} ({rollout['runName']})"
        )
        self._set("Deploying", "Launching", message)
        events.append(Event("Normal", "Deploying", f"{self.stage.name}: {message}"))

    def _gate(
        self,
        version: int,
        decided: Mapping[str, Mapping[str, Any]],
        annotations: Mapping[str, str],
    ) -> tuple[str, str, str] | None:
        """Why the promotion of ``version`` must wait (state, reason, message); ``None``: go."""
        stage = self.stage
        if stage.promote_from is None or version in (self.entry.get("history") or []):
            return None
        earlier = decided.get(stage.promote_from) or {}
        if earlier.get("state") != "Deployed" or earlier.get("deployedVersion") != version:
            return (
                "Pending",
                "AwaitingPromotion",
                f"waiting for {stage.promote_from} to deploy version {version}",
            )
        since = parse_ts(earlier.get("deployedTime")) or self.now
        until = since + timedelta(minutes=stage.soak_minutes)
        if self.now < until:
            return (
                "Pending",
                "Soaking",
                f"version {version} soaks in {stage.promote_from} until {ts(until)}",
            )
        alarms = self.observed.get("alarms") or {}
        if stage.soak_alarms and not alarms.get("ok"):
            return ("Pending", "AlarmsNotOk", alarms.get("message") or "soak alarms not read yet")
        if stage.requires_approval and annotations.get(stage.approval_annotation) != str(version):
            return (
                "AwaitingApproval",
                "AwaitingApproval",
                f"version {version} waits for approval: kubectl annotate modeldeployment "
                f"<name> {stage.approval_annotation}={version} --overwrite",
            )
        return None

    def _follow(self, events: list[Event]) -> None:
        """The rollout in flight: its run's state, then what the endpoint serves."""
        rollout = self.entry["rollout"]
        version = rollout["version"]
        run = (self.observed.get("runs") or {}).get(rollout["runKey"]) or {}
        state = run.get("state")
        if state not in ENDED_STATES:
            error = rollout.get("launchError")
            if error:
                self._set("Deploying", error["reason"], f"{rollout['runName']}: {error['message']}")
            else:
                reason = "Running" if rollout.get("runId") else "Launching"
                self._set(
                    "Deploying", reason, f"deploying version {version} ({rollout['runName']})"
                )
            return
        served = self.endpoint.get("servedVersion")
        self.entry.pop("rollout")
        self.entry["lastRollout"] = {**rollout, "state": state, "endedTime": ts(self.now)}
        if served is not None:
            self.entry["servedVersion"] = served
        if served == version:
            history = [v for v in self.entry.get("history") or [] if v != version] + [version]
            self.entry.update(
                deployedVersion=version, deployedTime=ts(self.now), history=history[-HISTORY_LIMIT:]
            )
            message = f"version {version} serves on {self.stage.endpoint_name}"
            self._set("Deployed", "Serving", message)
            events.append(Event("Normal", "Deployed", f"{self.stage.name}: {message}"))
            return
        if served is not None and state != "SUCCEEDED":
            reason = "RolledBack"
            message = (
                f"version {version} was rolled back ({self.endpoint.get('failureReason') or state}); "
                f"version {served} still serves on {self.stage.endpoint_name}"
            )
        else:
            reason = "Failed"
            message = (
                f"run {rollout['runName']} ended {state}; {self.stage.endpoint_name} serves "
                f"{'nothing' if served is None else f'version {served}'}"
            )
        self.entry["blocked"] = {"version": version, "reason": reason, "message": message}
        self._set(reason, reason, message)
        events.append(Event("Warning", reason, f"{self.stage.name}: {message}"))
