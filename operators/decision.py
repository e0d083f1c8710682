"""The decision: given spec, status, observations and the clock, what should happen now?

Pure functions only. No I/O, no clock reads, no randomness: the same inputs give the same
decision, so a handler that crashes and runs again decides the same thing, with the same run
keys. The handlers (imperative shell) gather the inputs and apply the :class:`Decision`.

Status is plain JSON (what the Kubernetes API stores). ``status.observations`` is written only by
the poller (source readings, run states, clock ticks); everything else only by :func:`decide`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from flywheel.operators.policy import (
    ConcurrencyPolicy,
    DataArrival,
    FieldError,
    Manual,
    Metric,
    MissingData,
    Policy,
    Schedule,
    Trigger,
)

ARMED, FIRING, DISARMED = "Armed", "Firing", "Disarmed"
SUCCEEDED_STATES = frozenset({"SUCCEEDED", "SKIPPED"})
FAILED_STATES = frozenset({"FAILED", "CANCELED"})
# What the poller records for a followed run that KFP answers 404 for: deleted in KFP.
DELETED_STATE = "DELETED"
# Run states after which nothing more happens to a run.
FINISHED_STATES = SUCCEEDED_STATES | FAILED_STATES | {DELETED_STATE}
CONDITION_TYPES = (
    "Ready",
    "Running",
    "RunCreated",
    "Suspended",
    "CoolingDown",
    "BackingOff",
    "Paused",
    "SourceError",
)
# Nonce values remembered per manual trigger; putting one of them back fires nothing.
RECENT_NONCES = 20
# Gates a manual trigger passes: pausing and waiting are for automatic triggers.
MANUAL_PASSES = frozenset({"Paused", "CoolingDown", "BackingOff"})
# The poller records why a source could not be read; these reasons mean "cannot ever work as
# configured", so the policy is not Ready, rather than "try again later".
CREDENTIAL_ERRORS = frozenset({"NoCredentials", "AccessDenied"})
# Times in status that gate what fires next. One in the future (written before the clock was
# stepped back) is taken as "now": it would otherwise hold the policy for the size of the step.
GATING_TIMES = ("resumedTime", "lastSuccessTime", "lastFailureTime")


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to record on the policy."""

    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    status: dict[str, Any]  # the whole new status, less `observations`
    launches: list[dict[str, Any]] = field(default_factory=list)  # new entries of status.active
    terminate: list[str] = field(default_factory=list)  # KFP run ids to terminate (Replace)
    events: list[Event] = field(default_factory=list)


@dataclass
class _Firing:
    """A trigger that wants a run now. ``consumed`` is its state once the firing is used up."""

    trigger: Trigger
    fire_key: str
    reason: str
    context: dict[str, Any]
    consumed: dict[str, Any]


def ts(moment: datetime) -> str:
    """RFC 3339 in UTC with seconds, as Kubernetes writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def run_key(policy_uid: str, trigger: str, fire_key: str) -> str:
    """Deterministic identity of one firing: same policy, trigger and fire key, same run."""
    digest = hashlib.sha256(f"{policy_uid}\0{trigger}\0{fire_key}".encode()).hexdigest()
    return digest[:16]


def run_name(policy_name: str, key: str) -> str:
    """The KFP run's display name: carries the key so that a restart can find the run."""
    return f"{policy_name[:200]}-{key}"


_TEMPLATE = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def render_parameters(parameters: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Fill ``{{ name }}`` placeholders in string parameters from the firing's context."""

    def fill(match: re.Match[str]) -> str:
        value = context.get(match.group(1), "")
        return value if isinstance(value, str) else json.dumps(value)

    return {k: _TEMPLATE.sub(fill, v) if isinstance(v, str) else v for k, v in parameters.items()}


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    now: datetime,
    generation: int,
) -> None:
    """Upsert a condition; ``lastTransitionTime`` moves only when the status flips."""
    value = "Unknown" if status is None else str(status)
    for cond in conditions:
        if cond["type"] == type_:
            if cond["status"] != value:
                cond["lastTransitionTime"] = ts(now)
            cond.update(status=value, reason=reason, message=message, observedGeneration=generation)
            return
    conditions.append(
        {
            "type": type_,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": ts(now),
            "observedGeneration": generation,
        }
    )


def invalid(
    status: Mapping[str, Any], errors: list[FieldError], *, now: datetime, generation: int
) -> Decision:
    """A spec the operator cannot act on: not Ready, naming each bad field; nothing fires."""
    new = {k: copy.deepcopy(v) for k, v in status.items() if k != "observations"}
    new["observedGeneration"] = generation
    conditions = new.setdefault("conditions", [])
    message = "; ".join(str(e) for e in errors)
    before = next((c for c in conditions if c["type"] == "Ready"), {})
    set_condition(conditions, "Ready", False, "InvalidSpec", message, now, generation)
    # One event per new complaint, not one per reconcile of the same bad spec.
    news = before.get("reason") != "InvalidSpec" or before.get("message") != message
    return Decision(status=new, events=[Event("Warning", "InvalidSpec", message)] if news else [])


def decide(
    policy: Policy,
    status: Mapping[str, Any],
    *,
    annotations: Mapping[str, str],
    now: datetime,
    generation: int,
    uid: str,
    name: str,
    earlier_nonces: Mapping[str, Sequence[str]] | None = None,
) -> Decision:
    """Decide what to launch, skip, queue or terminate now, and what status says about it.

    ``earlier_nonces``: by annotation key, values the handler saw in that annotation before
    its current one, oldest first. A value overwritten before a decision took it still fires
    (or is skipped or queued, with an event): a nonce is never dropped silently.
    """
    decider = _Decider(policy, status, annotations, now, generation, uid, name)
    decider.earlier_nonces = earlier_nonces or {}
    return decider.run()


class _Decider:
    """One decision, split into steps. Holds the working copy of status; does no I/O."""

    def __init__(
        self,
        policy: Policy,
        status: Mapping[str, Any],
        annotations: Mapping[str, str],
        now: datetime,
        generation: int,
        uid: str,
        name: str,
    ) -> None:
        self.policy = policy
        self.obs: Mapping[str, Any] = status.get("observations") or {}
        self.new = {k: copy.deepcopy(v) for k, v in status.items() if k != "observations"}
        self.annotations = annotations
        self.now = now
        self.generation = generation
        self.uid = uid
        self.name = name
        self.events: list[Event] = []
        self.launches: list[dict[str, Any]] = []
        self.terminate: list[str] = []
        self.counters: dict[str, int] = self.new.setdefault("counters", {})
        self.active: list[dict[str, Any]] = self.new.setdefault("active", [])
        self.wake: list[datetime] = []
        self.earlier_nonces: Mapping[str, Sequence[str]] = {}

    def run(self) -> Decision:
        self._clamp_future()
        self._finish_runs()
        self._note_resume()
        gate_reason, gate_until = self._gate()
        firings, trigger_states = self._evaluate_triggers()
        self._launch_queued(gate_reason)
        for firing in firings:
            if self._held(firing.trigger.name, gate_reason):
                trigger_states[firing.trigger.name]["state"] = FIRING
                if gate_until is not None:
                    self.wake.append(gate_until)
                continue
            forbidden = self.active and self.policy.concurrency is ConcurrencyPolicy.FORBID
            if forbidden and isinstance(firing.trigger.kind, DataArrival):
                self._hold_arrival(firing, trigger_states[firing.trigger.name])
                continue
            trigger_states[firing.trigger.name].update(firing.consumed)
            trigger_states[firing.trigger.name]["lastFiredTime"] = ts(self.now)
            self._apply_concurrency(firing)
        self.new["triggers"] = [trigger_states[t.name] for t in self.policy.triggers]
        self._conditions(gate_reason, gate_until)
        self._trim_history()
        self.new["activeCount"] = len(self.active)
        self.new["observedGeneration"] = self.generation
        schedule_times = [
            t["nextScheduleTime"] for t in self.new["triggers"] if t.get("nextScheduleTime")
        ]
        self.new["nextScheduleTime"] = min(schedule_times) if schedule_times else None
        self.new["nextWakeTime"] = ts(min(self.wake)) if self.wake else None
        return Decision(
            status=self.new, launches=self.launches, terminate=self.terminate, events=self.events
        )

    def _clamp_future(self) -> None:
        """Times in status later than now were written before a backward clock step: now."""
        for key in GATING_TIMES:
            moment = parse_ts(self.new.get(key))
            if moment is not None and moment > self.now:
                self.new[key] = ts(self.now)
        for state in self.new.get("triggers") or []:
            moment = parse_ts(state.get("lastScheduleTime"))
            if moment is not None and moment > self.now:
                state["lastScheduleTime"] = ts(self.now)

    def _note_resume(self) -> None:
        """Remember when ``suspend`` was lifted: readings taken before then are not acted on."""
        was = next(
            (c for c in self.new.get("conditions") or [] if c.get("type") == "Suspended"), {}
        )
        if was.get("status") == "True" and not self.policy.suspend:
            self.new["resumedTime"] = ts(self.now)

    def _before_resume(self, seen: Mapping[str, Any]) -> bool:
        resumed = parse_ts(self.new.get("resumedTime"))
        read = parse_ts(seen.get("evaluatedAt"))
        return resumed is not None and read is not None and read < resumed

    def _hold_arrival(self, firing: _Firing, state: dict[str, Any]) -> None:
        """Forbid with a run active: new objects wait, the watermark stays, so they fire later."""
        state["state"] = FIRING
        if state.get("skippedKey") == firing.fire_key:
            return  # already said so for these very objects
        state["skippedKey"] = firing.fire_key
        self._count("skipped")
        self.events.append(
            Event(
                "Normal",
                "Skipped",
                f"trigger {firing.trigger.name} ({firing.reason}): a run is active, "
                "concurrencyPolicy is Forbid; the objects count once it ends",
            )
        )

    # -- runs ---------------------------------------------------------------------------------

    def _finish_runs(self) -> None:
        """Move runs that the poller saw end from ``active`` to ``recentRuns``; count outcomes."""
        observed = self.obs.get("runs") or {}
        still_active = []
        for entry in self.active:
            seen = observed.get(entry["runKey"]) or {}
            state = seen.get("state")
            if not entry.get("runId") or state not in FINISHED_STATES:
                still_active.append(entry)
                continue
            finished = seen.get("finishedTime") or ts(self.now)
            recent = {
                k: entry.get(k)
                for k in ("runKey", "runName", "runId", "trigger", "reason", "launchedTime")
            }
            recent.update(state=state, finishedTime=finished)
            if entry.get("replaced"):
                recent["state"] = "Replaced"
                self._count("replaced")
            elif state == DELETED_STATE:
                # Neither a success nor a failure of the pipeline: someone removed the run.
                recent["state"] = "Deleted"
                self._count("deleted")
                self.events.append(
                    Event(
                        "Warning",
                        "RunDeleted",
                        f"{entry['runName']} (run {entry['runId']}) was deleted in KFP while it "
                        "was followed; it is no longer active",
                    )
                )
            elif state in SUCCEEDED_STATES:
                self.new["consecutiveFailures"] = 0
                self.new["lastSuccessTime"] = finished
                self._count("succeeded")
                self.events.append(Event("Normal", "RunSucceeded", f"{entry['runName']} {state}"))
            else:
                failures = self.new.get("consecutiveFailures", 0) + 1
                self.new["consecutiveFailures"] = failures
                self.new["lastFailureTime"] = finished
                self._count("failed")
                self.events.append(
                    Event(
                        "Warning", "RunFailed", f"{entry['runName']} {state} ({failures} in a row)"
                    )
                )
            self.new.setdefault("recentRuns", []).append(recent)
        self.active[:] = still_active

    def _trim_history(self) -> None:
        recent = self.new.get("recentRuns", [])
        good = [r for r in recent if r["state"] in SUCCEEDED_STATES | {"DryRun"}]
        bad = [r for r in recent if r not in good]
        keep_good = (
            good[-self.policy.successful_history :] if self.policy.successful_history else []
        )
        keep_bad = bad[-self.policy.failed_history :] if self.policy.failed_history else []
        kept = {id(r) for r in keep_good + keep_bad}
        self.new["recentRuns"] = [r for r in recent if id(r) in kept]

    # -- gates --------------------------------------------------------------------------------

    def _gate(self) -> tuple[str | None, datetime | None]:
        """Why non-manual firings must wait now, and until when (None: until something changes)."""
        if self.policy.suspend:
            return "Suspended", None
        if self._not_ready() is not None:
            return "NotReady", None
        failures = self.new.get("consecutiveFailures", 0)
        if self.policy.pause_after_failures and failures >= self.policy.pause_after_failures:
            return "Paused", None
        last_failure = parse_ts(self.new.get("lastFailureTime"))
        last_success = parse_ts(self.new.get("lastSuccessTime"))
        if failures and last_failure is not None:
            until = last_failure + timedelta(seconds=self.policy.backoff.delay(failures))
            if until > self.now:
                return "BackingOff", until
        ends = [
            t + timedelta(seconds=s)
            for t, s in (
                (last_success, self.policy.cooldown_after_success),
                (last_failure, self.policy.cooldown_after_failure),
            )
            if t is not None and s
        ]
        if ends and max(ends) > self.now:
            return "CoolingDown", max(ends)
        return None, None

    def _not_ready(self) -> tuple[str, str] | None:
        """Why the policy cannot work as configured: unknown pipeline, no credentials."""
        pipeline = self.obs.get("pipeline")
        if pipeline is None:
            return "PipelineUnchecked", "the pipeline has not been looked up yet"
        if not pipeline.get("ok"):
            return pipeline.get("reason", "PipelineNotFound"), pipeline.get("message", "")
        kfp = self.obs.get("kfp") or {}
        if kfp and not kfp.get("ok"):
            return "KfpUnreachable", kfp.get("message", "")
        for trigger in self.policy.triggers:
            error = (self.obs.get("triggers", {}).get(trigger.name) or {}).get("error")
            if error and error.get("reason") in CREDENTIAL_ERRORS:
                return "SourceCredentialsMissing", f"trigger {trigger.name}: {error['message']}"
        return None

    # -- triggers -----------------------------------------------------------------------------

    def _evaluate_triggers(self) -> tuple[list[_Firing], dict[str, dict[str, Any]]]:
        previous = {t["name"]: t for t in self.new.get("triggers", []) if "name" in t}
        firings: list[_Firing] = []
        states: dict[str, dict[str, Any]] = {}
        for trigger in self.policy.triggers:
            state = copy.deepcopy(previous.get(trigger.name, {}))
            state.update(name=trigger.name, kind=trigger.kind_name)
            state.setdefault("state", ARMED)
            seen = (self.obs.get("triggers") or {}).get(trigger.name) or {}
            if seen.get("evaluatedAt"):
                state["lastEvaluationTime"] = seen["evaluatedAt"]
            error = seen.get("error")
            state["message"] = f"{error['reason']}: {error['message']}" if error else ""
            evaluate = {
                Schedule: self._schedule,
                Metric: self._metric,
                DataArrival: self._data_arrival,
            }
            if isinstance(trigger.kind, Manual):
                firings.extend(self._manual(trigger, state, seen))
            elif not error:
                firing = evaluate[type(trigger.kind)](trigger, state, seen)
                if firing is not None:
                    firings.append(firing)
            states[trigger.name] = state
        return firings, states

    def _schedule(
        self, trigger: Trigger, state: dict[str, Any], _: Mapping[str, Any]
    ) -> _Firing | None:
        sched = trigger.kind
        assert isinstance(sched, Schedule)
        tz = ZoneInfo(sched.time_zone)
        local_now = self.now.astimezone(tz)
        upcoming = croniter(sched.cron, local_now).get_next(datetime)
        state["nextScheduleTime"] = ts(upcoming)
        self.wake.append(upcoming)
        last = parse_ts(state.get("lastScheduleTime"))
        if last is None:
            # A new trigger starts from now: slots before the policy existed are not "missed".
            state["lastScheduleTime"] = ts(self.now)
            return None
        # croniter's get_prev is strictly earlier, so start one second after this whole second.
        start = local_now.replace(microsecond=0) + timedelta(seconds=1)
        slot = croniter(sched.cron, start).get_prev(datetime)
        if slot <= last:
            return None
        lateness = (self.now - slot).total_seconds()
        if lateness > sched.deadline_seconds:
            state["lastScheduleTime"] = ts(slot)
            state["state"] = ARMED
            self._count("missed")
            self.events.append(
                Event(
                    "Warning",
                    "MissedSchedule",
                    f"trigger {trigger.name}: slot {ts(slot)} is {lateness:.0f}s "
                    f"late, past its starting deadline",
                )
            )
            return None
        return _Firing(
            trigger,
            fire_key=ts(slot),
            reason=f"scheduled for {ts(slot)}",
            context={"scheduledTime": ts(slot)},
            consumed={"lastScheduleTime": ts(slot), "state": ARMED},
        )

    def _metric(
        self, trigger: Trigger, state: dict[str, Any], seen: Mapping[str, Any]
    ) -> _Firing | None:
        metric = trigger.kind
        assert isinstance(metric, Metric)
        if "values" not in seen or self._before_resume(seen):
            return None
        keep = metric.evaluation_periods
        values: list[float | None] = list(seen["values"])[-keep:]
        times: list[str] = list(seen.get("times") or [])[-keep:]
        present = [v for v in values if v is not None]
        if present:
            state["lastValue"] = present[-1]
        alarm = alarm_state(metric, values)
        if alarm == "OK":
            state.pop("breachSince", None)
            if state["state"] != DISARMED or metric.cleared(present[-1] if present else None):
                state["state"] = ARMED
            return None
        if alarm != "ALARM" or state["state"] == DISARMED:
            return None
        # The breach is named after its first breaching datapoint, not after the time it was
        # seen: deciding again over the same datapoints, however late, gives the same key.
        since = state.get("breachSince") or _first_breach(metric, values, times, seen)
        state["breachSince"] = since
        value = state.get("lastValue")
        return _Firing(
            trigger,
            fire_key=f"breach@{since}",
            reason=f"metric {value} breached {metric.comparator.value} {metric.threshold:g}",
            context={"metricValue": value},
            consumed={"state": DISARMED},
        )

    def _data_arrival(
        self, trigger: Trigger, state: dict[str, Any], seen: Mapping[str, Any]
    ) -> _Firing | None:
        arrival = trigger.kind
        assert isinstance(arrival, DataArrival)
        watermark = state.get("watermark", "")
        state["watermark"] = watermark
        # A reading taken against an older watermark counts objects already consumed.
        if "newObjects" not in seen or seen.get("since", "") != watermark:
            return None
        if self._before_resume(seen):
            return None
        count, size = seen["newObjects"], seen.get("newBytes", 0)
        state["lastValue"] = count
        if count < arrival.min_new_objects or size < arrival.min_new_bytes:
            return None
        return _Firing(
            trigger,
            fire_key=f"{watermark}..{seen['maxKey']}",
            reason=f"{count} new objects ({size} bytes) in s3://{arrival.bucket}/{arrival.prefix}",
            context={"newKeys": seen.get("newKeys", []), "newObjects": count},
            consumed={"watermark": seen["maxKey"], "state": ARMED, "skippedKey": None},
        )

    def _manual(
        self, trigger: Trigger, state: dict[str, Any], _: Mapping[str, Any]
    ) -> list[_Firing]:
        """One firing per new nonce: the current value, after any the handler saw before it."""
        manual = trigger.kind
        assert isinstance(manual, Manual)
        current = self.annotations.get(manual.annotation)
        recent = list(state.get("recentNonces") or filter(None, [state.get("lastNonce")]))
        number = int(state.get("nonceCount", 0))
        firings = []
        for nonce in [*self.earlier_nonces.get(manual.annotation, ()), current]:
            if not nonce or nonce in recent:
                continue  # an old value put back is not a new request
            # Numbered: a value reused after it left the recent list still gets a run of its
            # own, never the finished run of its first use.
            number += 1
            recent = [*recent, nonce][-RECENT_NONCES:]
            firings.append(
                _Firing(
                    trigger,
                    fire_key=f"nonce:{number}:{nonce}",
                    reason=f"manual nonce {nonce}",
                    context={"nonce": nonce},
                    consumed={
                        "lastNonce": nonce,
                        "lastValue": nonce,
                        "recentNonces": recent,
                        "nonceCount": number,
                        "state": ARMED,
                    },
                )
            )
        return firings

    # -- launching ----------------------------------------------------------------------------

    def _launch_queued(self, gate_reason: str | None) -> None:
        queued = self.new.get("queued")
        if not queued:
            return
        trigger = self.policy.trigger(queued["trigger"])
        if trigger is None:
            self.new["queued"] = None  # its trigger was removed from the spec: so is the firing
            self.events.append(
                Event("Normal", "Dequeued", f"trigger {queued['trigger']} no longer exists")
            )
            return
        slot = parse_ts(queued.get("context", {}).get("scheduledTime"))
        if isinstance(trigger.kind, Schedule) and slot is not None:
            lateness = (self.now - slot).total_seconds()
            if lateness > trigger.kind.deadline_seconds:
                self.new["queued"] = None
                self._count("missed")
                self.events.append(
                    Event(
                        "Warning",
                        "MissedSchedule",
                        f"trigger {trigger.name}: queued slot {ts(slot)} is {lateness:.0f}s "
                        "late, past its starting deadline",
                    )
                )
                return
            if math.isfinite(trigger.kind.deadline_seconds):
                self.wake.append(slot + timedelta(seconds=trigger.kind.deadline_seconds))
        if self.active or self._held(queued["trigger"], gate_reason):
            return
        self.new["queued"] = None
        self._launch(queued["trigger"], queued["fireKey"], queued["reason"], queued["context"])

    def _held(self, trigger: str, gate_reason: str | None) -> bool:
        """Whether a gate holds this trigger's firing; a person asking by hand gets through."""
        if gate_reason is None:
            return False
        manual = isinstance(getattr(self.policy.trigger(trigger), "kind", None), Manual)
        return not (manual and gate_reason in MANUAL_PASSES)

    def _apply_concurrency(self, firing: _Firing) -> None:
        name, key, reason = firing.trigger.name, firing.fire_key, firing.reason
        if not self.active or self.policy.concurrency is ConcurrencyPolicy.ALLOW:
            self._launch(name, key, reason, firing.context)
            return
        match self.policy.concurrency:
            case ConcurrencyPolicy.FORBID:
                self._count("skipped")
                self.events.append(
                    Event(
                        "Normal",
                        "Skipped",
                        f"trigger {name} ({reason}): a run is active, concurrencyPolicy is Forbid",
                    )
                )
            case ConcurrencyPolicy.REPLACE:
                self._replace_all()
                self.events.append(
                    Event(
                        "Normal", "Replacing", f"trigger {name} ({reason}): terminating active runs"
                    )
                )
                self._launch(name, key, reason, firing.context)
            case ConcurrencyPolicy.QUEUE:
                earlier = self.new.get("queued")
                coalesced = (earlier.get("coalesced", 0) + 1) if earlier else 0
                self.new["queued"] = {
                    "trigger": name,
                    "fireKey": key,
                    "reason": reason,
                    "context": firing.context,
                    "queuedTime": ts(self.now),
                    "coalesced": coalesced,
                }
                self._count("queued")
                self.events.append(
                    Event(
                        "Normal",
                        "Queued",
                        f"trigger {name} ({reason}): waits for the active run"
                        + (f", coalescing {coalesced} earlier" if coalesced else ""),
                    )
                )

    def _replace_all(self) -> None:
        """Mark every active run replaced, launched or not; the shell terminates them until done.

        A run decided in this same decision was never written anywhere: it simply collapses
        into the newer firing. One decided earlier may be being created; the shell looks it up
        by name and terminates what it finds, or drops the key once no create can land.
        """
        for entry in [e for e in self.active if e in self.launches]:
            self.active.remove(entry)
            self.launches.remove(entry)
            self._count("collapsed")
        for entry in self.active:
            if not entry.get("replaced"):
                entry["replaced"] = True
                if entry.get("runId"):
                    self.terminate.append(entry["runId"])

    def _launch(self, trigger: str, fire_key: str, reason: str, context: Mapping[str, Any]) -> None:
        key = run_key(self.uid, trigger, fire_key)
        name = run_name(self.name, key)
        full_context = {**context, "trigger": trigger, "reason": reason, "runKey": key}
        parameters = render_parameters(self.policy.pipeline.parameters, full_context)
        self.new["lastTriggerTime"] = ts(self.now)
        if self.policy.dry_run:
            self._count("dryRuns")
            self.new.setdefault("recentRuns", []).append(
                {
                    "runKey": key,
                    "runName": name,
                    "trigger": trigger,
                    "reason": reason,
                    "state": "DryRun",
                    "launchedTime": ts(self.now),
                    "parameters": parameters,
                }
            )
            self.events.append(Event("Normal", "WouldTrigger", f"{name}: {reason} (dry run)"))
            return
        entry = {
            "runKey": key,
            "runName": name,
            "trigger": trigger,
            "reason": reason,
            "fireKey": fire_key,
            "decidedTime": ts(self.now),
            "parameters": parameters,
        }
        self.active.append(entry)
        self.launches.append(entry)
        self._count("launched")
        self.events.append(Event("Normal", "Launching", f"{name}: {reason}"))

    # -- conditions ---------------------------------------------------------------------------

    def _conditions(self, gate_reason: str | None, gate_until: datetime | None) -> None:
        conds: list[dict[str, Any]] = self.new.setdefault("conditions", [])

        def put(type_: str, value: bool | None, reason: str, message: str = "") -> None:
            set_condition(conds, type_, value, reason, message, self.now, self.generation)

        not_ready = self._not_ready()
        if not_ready is None:
            put("Ready", True, "Ready", "triggers are being evaluated")
        else:
            put("Ready", None if not_ready[0] == "PipelineUnchecked" else False, *not_ready)
        put("Running", *self._running())
        put("RunCreated", *self._created())
        put("Suspended", self.policy.suspend, "SpecSuspend" if self.policy.suspend else "Active")
        failures = self.new.get("consecutiveFailures", 0)
        paused = gate_reason == "Paused"
        put(
            "Paused",
            paused,
            "ConsecutiveFailures" if paused else "NotPaused",
            f"{failures} failures in a row; a successful manual run resumes" if paused else "",
        )
        until = f"until {ts(gate_until)}" if gate_until else ""
        put(
            "CoolingDown",
            gate_reason == "CoolingDown",
            "Cooldown" if gate_reason == "CoolingDown" else "NoCooldown",
            until if gate_reason == "CoolingDown" else "",
        )
        put(
            "BackingOff",
            gate_reason == "BackingOff",
            "RunFailures" if gate_reason == "BackingOff" else "NoBackoff",
            until if gate_reason == "BackingOff" else "",
        )
        errors = [f"{t['name']}: {t['message']}" for t in self.new["triggers"] if t["message"]]
        put(
            "SourceError",
            bool(errors),
            "SourceUnreadable" if errors else "SourcesReadable",
            "; ".join(errors),
        )
        order = {t: i for i, t in enumerate(CONDITION_TYPES)}
        conds.sort(key=lambda c: order.get(c["type"], math.inf))

    def _running(self) -> tuple[bool, str, str]:
        """Whether a run is going in KFP now, and if not, why not; never a run only decided."""
        current = [e for e in self.active if not e.get("replaced")]
        going = [e["runName"] for e in current if e.get("runId")]
        if going:
            return True, "RunsActive", ", ".join(going)
        failed = [e for e in current if e.get("launchError")]
        if failed:
            error = failed[0]["launchError"]
            return False, error["reason"], f"{failed[0]['runName']}: {error['message']}"
        if current:
            return False, "Launching", ", ".join(e["runName"] for e in current)
        return False, "NoRunsActive", ""

    def _created(self) -> tuple[bool, str, str]:
        """Whether every run decided exists in KFP; if not, why not. ``KfpRefused`` (KFP
        answered the create 4xx) needs a person: it is retried after a back-off or a spec change."""
        pending = [e for e in self.active if not e.get("replaced") and not e.get("runId")]
        refused = [e for e in pending if (e.get("launchError") or {}).get("reason") == "KfpRefused"]
        failed = refused or [e for e in pending if e.get("launchError")]
        if failed:
            error = failed[0]["launchError"]
            message = f"{failed[0]['runName']}: {error['message']}"
            if error.get("retryTime"):
                message += f"; tried {error.get('attempts', 1)} time(s), next at "
                message += f"{error['retryTime']} or on a change of the spec"
            return False, error["reason"], message
        if pending:
            return False, "Creating", ", ".join(e["runName"] for e in pending)
        return True, "RunsCreated", "every run decided exists in KFP"

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1


def _first_breach(
    metric: Metric, values: list[float | None], times: list[str], seen: Mapping[str, Any]
) -> str:
    """The time of the first datapoint that counts as breaching in the window.

    Readings carry one time per value; only a window of nothing but padding (all missing,
    treated as breaching) has none, and is named after the reading.
    """
    for value, time in zip(values, times, strict=False):
        if value is None:
            if metric.treat_missing_data is MissingData.BREACHING:
                return time
        elif metric.comparator.breaches(value, metric.threshold):
            return time
    return times[0] if times else str(seen.get("evaluatedAt", ""))


def alarm_state(metric: Metric, values: list[float | None]) -> str:
    """ALARM, OK or INSUFFICIENT_DATA for the newest ``evaluationPeriods`` datapoints.

    Follows CloudWatch: missing datapoints count as breaching or not per ``treatMissingData``;
    ``missing`` and ``ignore`` leave them out (``ignore`` keeps the previous state when all are
    missing, which the caller gets as INSUFFICIENT_DATA, a state that changes nothing).
    """
    missing = [None] * max(0, metric.evaluation_periods - len(values))
    window = missing + values[-metric.evaluation_periods :]
    breaches = oks = 0
    for value in window:
        if value is None:
            if metric.treat_missing_data is MissingData.BREACHING:
                breaches += 1
            elif metric.treat_missing_data is MissingData.NOT_BREACHING:
                oks += 1
        elif metric.comparator.breaches(value, metric.threshold):
            breaches += 1
        else:
            oks += 1
    if breaches >= metric.datapoints_to_alarm:
        return "ALARM"
    if breaches + oks == 0:
        return "INSUFFICIENT_DATA"
    return "OK"
