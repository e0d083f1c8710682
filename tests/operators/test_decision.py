"""The decision function with plain values: no cluster, no clock, no mocks."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flywheel.operators.decision import Decision, decide, invalid, run_key
from flywheel.operators.policy import FieldError, parse_policy

NOW = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)
UID = "4f2c-uid"


def make_spec(*triggers: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "pipeline": {"name": "train", "parameters": {"why": "{{ reason }}"}},
        "triggers": list(triggers),
        **fields,
    }


MANUAL = {"name": "by-hand", "manual": {}}
METRIC = {
    "name": "drift",
    "metric": {
        "cloudWatch": {"namespace": "Flywheel", "metricName": "RMSE", "periodSeconds": 60},
        "comparator": "GreaterThanThreshold",
        "threshold": 0.5,
        "evaluationPeriods": 3,
        "datapointsToAlarm": 2,
    },
}
DATA = {"name": "new-data", "dataArrival": {"bucket": "lake", "prefix": "in/", "minNewObjects": 2}}


def schedule(cron: str = "0 * * * *", **fields: Any) -> dict[str, Any]:
    return {"name": "hourly", "schedule": {"cron": cron, **fields}}


def ready(**observations: Any) -> dict[str, Any]:
    return {"observations": {"pipeline": {"ok": True}, **observations}}


def run(
    spec: dict[str, Any], status: dict[str, Any], *, now: datetime = NOW, nonce: str | None = None
) -> Decision:
    annotations = {"flywheel.dev/run-nonce": nonce} if nonce else {}
    return decide(
        parse_policy(spec),
        status,
        annotations=annotations,
        now=now,
        generation=1,
        uid=UID,
        name="churn",
    )


def then(decision: Decision, **observations: Any) -> dict[str, Any]:
    """The next status: what was decided, plus the poller's newer observations."""
    status = copy.deepcopy(decision.status)
    status["observations"] = {"pipeline": {"ok": True}, **observations}
    return status


def condition(decision: Decision, type_: str) -> dict[str, Any]:
    return next(c for c in decision.status["conditions"] if c["type"] == type_)


def trigger_state(decision: Decision, name: str) -> dict[str, Any]:
    return next(t for t in decision.status["triggers"] if t["name"] == name)


def observed(
    decision: Decision, state: str = "RUNNING", at: datetime = NOW, **states_by_run_key: str
) -> dict[str, Any]:
    """Status after the poller saw every launched run created and in ``state`` (or its own)."""
    status = copy.deepcopy(decision.status)
    runs = {}
    for entry in status["active"]:
        entry.setdefault("runId", f"id-{entry['runKey']}")
        runs[entry["runKey"]] = {
            "state": states_by_run_key.get(entry["runKey"], state),
            "finishedTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    status["observations"] = {"pipeline": {"ok": True}, "runs": runs}
    return status


def finished(decision: Decision, state: str, at: datetime = NOW) -> dict[str, Any]:
    return observed(decision, state, at)


def running(decision: Decision) -> dict[str, Any]:
    return observed(decision, "RUNNING")


# -- manual -----------------------------------------------------------------------------------


def test_new_nonce_launches_exactly_one_run_with_a_deterministic_key() -> None:
    first = run(make_spec(MANUAL), ready(), nonce="abc")
    assert [e["runKey"] for e in first.launches] == [run_key(UID, "by-hand", "nonce:1:abc")]
    assert first.launches[0]["runName"] == f"churn-{first.launches[0]['runKey']}"
    assert first.launches[0]["parameters"] == {"why": "manual nonce abc"}
    again = run(make_spec(MANUAL), running(first), nonce="abc")
    assert again.launches == []


def test_a_crash_before_status_is_written_decides_the_same_run_key() -> None:
    one = run(make_spec(MANUAL), ready(), nonce="n1")
    two = run(make_spec(MANUAL), ready(), nonce="n1")
    assert one.launches[0]["runKey"] == two.launches[0]["runKey"]


def test_a_different_nonce_launches_another_run() -> None:
    first = run(make_spec(MANUAL, concurrencyPolicy="Allow"), ready(), nonce="n1")
    second = run(make_spec(MANUAL, concurrencyPolicy="Allow"), running(first), nonce="n2")
    assert len(second.launches) == 1
    assert second.launches[0]["runKey"] != first.launches[0]["runKey"]


# -- schedule ---------------------------------------------------------------------------------


def test_schedule_starts_from_now_without_firing_for_the_past() -> None:
    decision = run(make_spec(schedule()), ready())
    assert decision.launches == []
    assert trigger_state(decision, "hourly")["nextScheduleTime"] == "2026-03-02T11:00:00Z"
    assert decision.status["nextScheduleTime"] == "2026-03-02T11:00:00Z"


def test_schedule_fires_once_for_a_slot_within_its_deadline() -> None:
    start = run(make_spec(schedule()), ready(), now=NOW)
    at_slot = NOW.replace(hour=11, minute=0, second=20)
    fired = run(make_spec(schedule()), then(start), now=at_slot)
    assert [e["fireKey"] for e in fired.launches] == ["2026-03-02T11:00:00Z"]
    later = run(
        make_spec(schedule(), concurrencyPolicy="Allow"),
        running(fired),
        now=at_slot + timedelta(seconds=5),
    )
    assert later.launches == []


def test_schedule_without_catch_up_skips_a_slot_missed_past_the_deadline() -> None:
    start = run(make_spec(schedule()), ready())
    after_downtime = NOW.replace(hour=13, minute=5)
    decision = run(make_spec(schedule()), then(start), now=after_downtime)
    assert decision.launches == []
    assert [e.reason for e in decision.events] == ["MissedSchedule"]
    assert trigger_state(decision, "hourly")["lastScheduleTime"] == "2026-03-02T13:00:00Z"


def test_schedule_catch_up_latest_runs_only_the_newest_missed_slot() -> None:
    spec = make_spec(schedule(catchUp="Latest"))
    start = run(spec, ready())
    decision = run(spec, then(start), now=NOW.replace(hour=13, minute=5))
    assert [e["fireKey"] for e in decision.launches] == ["2026-03-02T13:00:00Z"]


def test_schedule_catch_up_latest_still_honours_an_explicit_deadline() -> None:
    spec = make_spec(schedule(catchUp="Latest", startingDeadlineSeconds=120))
    start = run(spec, ready())
    decision = run(spec, then(start), now=NOW.replace(hour=13, minute=5))
    assert decision.launches == []


def test_schedule_uses_its_time_zone() -> None:
    spec = make_spec(schedule("0 3 * * *", timeZone="Europe/Berlin"))
    decision = run(spec, ready())
    assert trigger_state(decision, "hourly")["nextScheduleTime"] == "2026-03-03T02:00:00Z"


# -- metric -----------------------------------------------------------------------------------


def metric_obs(*values: float | None, at: str = "2026-03-02T10:00:00Z") -> dict[str, Any]:
    """A reading at ``at`` of one-minute datapoints, the newest starting at ``at``."""
    end = datetime.fromisoformat(at)
    times = [
        (end - timedelta(minutes=len(values) - 1 - i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for i in range(len(values))
    ]
    return {"triggers": {"drift": {"values": list(values), "times": times, "evaluatedAt": at}}}


def test_metric_fires_on_entering_breach_and_not_again_while_in_breach() -> None:
    spec = make_spec(METRIC, concurrencyPolicy="Allow")
    quiet = run(spec, ready(**metric_obs(0.1, 0.2, 0.3)))
    assert quiet.launches == [] and trigger_state(quiet, "drift")["state"] == "Armed"
    breach = run(spec, then(quiet, **metric_obs(0.2, 0.7, 0.9, at="2026-03-02T10:01:00Z")))
    assert len(breach.launches) == 1
    assert trigger_state(breach, "drift")["state"] == "Disarmed"
    still = run(spec, then(breach, **metric_obs(0.7, 0.9, 0.8, at="2026-03-02T10:02:00Z")))
    assert still.launches == []


def test_metric_rearms_only_after_recovery() -> None:
    spec = make_spec(METRIC, concurrencyPolicy="Allow")
    breach = run(spec, ready(**metric_obs(0.7, 0.9, 0.9, at="2026-03-02T10:01:00Z")))
    recovered = run(spec, then(breach, **metric_obs(0.9, 0.1, 0.1, at="2026-03-02T10:02:00Z")))
    assert recovered.launches == [] and trigger_state(recovered, "drift")["state"] == "Armed"
    again = run(spec, then(recovered, **metric_obs(0.1, 0.8, 0.9, at="2026-03-02T10:03:00Z")))
    assert len(again.launches) == 1
    assert again.launches[0]["runKey"] != breach.launches[0]["runKey"]


def test_a_breach_decided_again_from_a_later_reading_gets_the_same_run_key() -> None:
    # A stale event, or a crash before status was written: the same breach is decided twice,
    # from readings a period apart. The key comes from the first breaching datapoint.
    spec = make_spec(METRIC)
    early = run(spec, ready(**metric_obs(0.1, 0.9, 0.9, at="2026-03-02T10:01:00Z")))
    late = run(spec, ready(**metric_obs(0.9, 0.9, 0.95, at="2026-03-02T10:02:00Z")))
    assert [e["fireKey"] for e in early.launches] == ["breach@2026-03-02T10:00:00Z"]
    assert [e["runKey"] for e in late.launches] == [e["runKey"] for e in early.launches]


def hysteresis_spec(clear: float) -> dict[str, Any]:
    metric = copy.deepcopy(METRIC)
    metric["metric"].update(evaluationPeriods=1, datapointsToAlarm=1, clearThreshold=clear)
    return make_spec(metric, concurrencyPolicy="Allow")


def test_a_metric_wobbling_around_its_threshold_fires_once_until_it_clears() -> None:
    spec = hysteresis_spec(clear=0.4)
    status: dict[str, Any] = ready()
    launches = 0
    for minute, value in enumerate([0.51, 0.49, 0.51, 0.49, 0.51, 0.45, 0.52]):
        at = f"2026-03-02T10:{minute:02d}:00Z"
        decision = run(spec, then_status(status, metric_obs(value, at=at)))
        launches += len(decision.launches)
        status = decision.status
    assert launches == 1
    assert trigger_state(decision, "drift")["state"] == "Disarmed"
    cleared = run(spec, then_status(status, metric_obs(0.39, at="2026-03-02T10:10:00Z")))
    assert trigger_state(cleared, "drift")["state"] == "Armed"
    again = run(spec, then_status(cleared.status, metric_obs(0.6, at="2026-03-02T10:11:00Z")))
    assert len(again.launches) == 1


def then_status(status: dict[str, Any], observations: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(status)
    new["observations"] = {"pipeline": {"ok": True}, **observations}
    return new


def test_metric_needs_datapoints_to_alarm_out_of_evaluation_periods() -> None:
    spec = make_spec(METRIC)
    assert run(spec, ready(**metric_obs(0.1, 0.1, 0.9))).launches == []
    assert len(run(spec, ready(**metric_obs(0.9, 0.1, 0.9))).launches) == 1


@pytest.mark.parametrize(
    ("treatment", "fires"),
    [("breaching", True), ("notBreaching", False), ("missing", False), ("ignore", False)],
)
def test_missing_datapoints_follow_treat_missing_data(treatment: str, fires: bool) -> None:
    metric = copy.deepcopy(METRIC)
    metric["metric"]["treatMissingData"] = treatment
    decision = run(make_spec(metric), ready(**metric_obs(None, None, 0.9)))
    assert bool(decision.launches) is fires


def test_a_source_error_never_fires_and_sets_source_error() -> None:
    obs = {
        "triggers": {
            "drift": {
                "evaluatedAt": "2026-03-02T10:00:00Z",
                "error": {"reason": "Throttling", "message": "slow down"},
            }
        }
    }
    decision = run(make_spec(METRIC), ready(**obs))
    assert decision.launches == []
    assert condition(decision, "SourceError")["status"] == "True"
    assert condition(decision, "Ready")["status"] == "True"


def test_missing_credentials_make_the_policy_not_ready() -> None:
    obs = {
        "triggers": {
            "drift": {
                "evaluatedAt": "2026-03-02T10:00:00Z",
                "error": {"reason": "NoCredentials", "message": "none found"},
            }
        }
    }
    decision = run(make_spec(METRIC, MANUAL), ready(**obs), nonce="x")
    assert decision.launches == []
    assert condition(decision, "Ready")["reason"] == "SourceCredentialsMissing"


def test_an_unknown_pipeline_is_not_ready_and_never_fires() -> None:
    status = {
        "observations": {
            "pipeline": {
                "ok": False,
                "reason": "PipelineNotFound",
                "message": "no pipeline named train",
            }
        }
    }
    decision = run(make_spec(MANUAL), status, nonce="x")
    assert decision.launches == []
    ready_condition = condition(decision, "Ready")
    assert (ready_condition["status"], ready_condition["reason"]) == ("False", "PipelineNotFound")


# -- data arrival -----------------------------------------------------------------------------


def data_obs(since: str, count: int, max_key: str, size: int = 10) -> dict[str, Any]:
    return {
        "triggers": {
            "new-data": {
                "since": since,
                "newObjects": count,
                "newBytes": size,
                "maxKey": max_key,
                "newKeys": [max_key],
                "evaluatedAt": "2026-03-02T10:00:00Z",
            }
        }
    }


def test_new_objects_fire_once_and_advance_the_watermark() -> None:
    spec = make_spec(DATA, concurrencyPolicy="Allow")
    too_few = run(spec, ready(**data_obs("", 1, "in/a")))
    assert too_few.launches == []
    fired = run(spec, then(too_few, **data_obs("", 2, "in/b")))
    assert len(fired.launches) == 1
    assert trigger_state(fired, "new-data")["watermark"] == "in/b"
    stale = run(spec, then(fired, **data_obs("", 2, "in/b")))
    assert stale.launches == []
    more = run(spec, then(fired, **data_obs("in/b", 3, "in/e")))
    assert len(more.launches) == 1


def test_min_new_bytes_holds_back_small_arrivals() -> None:
    data = copy.deepcopy(DATA)
    data["dataArrival"]["minNewBytes"] = 1000
    assert run(make_spec(data), ready(**data_obs("", 5, "in/e", size=999))).launches == []


# -- concurrency ------------------------------------------------------------------------------


def test_forbid_skips_while_a_run_is_active() -> None:
    spec = make_spec(MANUAL, concurrencyPolicy="Forbid")
    first = run(spec, ready(), nonce="n1")
    skipped = run(spec, running(first), nonce="n2")
    assert skipped.launches == []
    assert [e.reason for e in skipped.events] == ["Skipped"]
    assert skipped.status["counters"]["skipped"] == 1
    assert trigger_state(skipped, "by-hand")["lastNonce"] == "n2"


def test_allow_launches_alongside_an_active_run() -> None:
    spec = make_spec(MANUAL, concurrencyPolicy="Allow")
    first = run(spec, ready(), nonce="n1")
    second = run(spec, running(first), nonce="n2")
    assert len(second.launches) == 1
    assert len(second.status["active"]) == 2


def test_replace_terminates_the_active_run_and_launches() -> None:
    spec = make_spec(MANUAL, concurrencyPolicy="Replace")
    first = run(spec, ready(), nonce="n1")
    second = run(spec, running(first), nonce="n2")
    assert second.terminate == [f"id-{first.launches[0]['runKey']}"]
    assert len(second.launches) == 1
    replaced = {first.launches[0]["runKey"]: "CANCELED"}
    ended = run(spec, observed(second, **replaced), nonce="n2")
    assert ended.status.get("consecutiveFailures", 0) == 0
    assert [r["state"] for r in ended.status["recentRuns"]] == ["Replaced"]
    assert [e["runKey"] for e in ended.status["active"]] == [second.launches[0]["runKey"]]


def test_queue_coalesces_to_one_pending_run_and_launches_it_when_the_active_run_ends() -> None:
    spec = make_spec(MANUAL, concurrencyPolicy="Queue")
    first = run(spec, ready(), nonce="n1")
    queued = run(spec, running(first), nonce="n2")
    assert queued.launches == [] and queued.status["queued"]["fireKey"] == "nonce:2:n2"
    coalesced = run(spec, running(queued), nonce="n3")
    assert coalesced.status["queued"]["fireKey"] == "nonce:3:n3"
    assert coalesced.status["queued"]["coalesced"] == 1
    done = run(spec, finished(coalesced, "SUCCEEDED"), nonce="n3")
    assert [e["fireKey"] for e in done.launches] == ["nonce:3:n3"]
    assert done.status["queued"] is None


# -- cooldown, backoff, pause -----------------------------------------------------------------


def test_cooldown_after_success_defers_a_breach_until_it_ends() -> None:
    spec = make_spec(METRIC, cooldown={"afterSuccessSeconds": 600})
    status = ready(**metric_obs(0.9, 0.9, 0.9))
    status["lastSuccessTime"] = "2026-03-02T10:00:30Z"
    cooling = run(spec, status, now=NOW + timedelta(seconds=60))
    assert cooling.launches == []
    assert condition(cooling, "CoolingDown")["status"] == "True"
    assert trigger_state(cooling, "drift")["state"] == "Firing"
    assert cooling.status["nextWakeTime"] == "2026-03-02T10:10:30Z"
    after = run(spec, then(cooling, **metric_obs(0.9, 0.9, 0.9)), now=NOW + timedelta(minutes=11))
    assert len(after.launches) == 1


def test_manual_trigger_is_not_held_by_cooldown() -> None:
    spec = make_spec(MANUAL, cooldown={"afterSuccessSeconds": 600})
    first = run(spec, ready(), nonce="n1")
    again = run(spec, finished(first, "SUCCEEDED"), nonce="n2", now=NOW + timedelta(seconds=5))
    assert len(again.launches) == 1


@pytest.mark.parametrize(("failures", "wait"), [(1, 60), (2, 120), (3, 240), (4, 300)])
def test_backoff_grows_with_consecutive_failures_up_to_its_max(failures: int, wait: int) -> None:
    spec = make_spec(DATA, backoff={"initialSeconds": 60, "factor": 2, "maxSeconds": 300})
    status = ready(**data_obs("", 2, "in/a"))
    status.update(consecutiveFailures=failures, lastFailureTime="2026-03-02T10:00:30Z")
    held = run(spec, status, now=NOW + timedelta(seconds=wait - 1))
    assert held.launches == []
    until = (NOW + timedelta(seconds=wait)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert condition(held, "BackingOff")["message"] == f"until {until}"
    assert len(run(spec, status, now=NOW + timedelta(seconds=wait)).launches) == 1


def test_pause_after_consecutive_failures_until_a_manual_run_succeeds() -> None:
    spec = make_spec(
        MANUAL,
        METRIC,
        pauseAfterConsecutiveFailures=1,
        concurrencyPolicy="Allow",
        backoff={"initialSeconds": 0},
    )
    first = run(spec, ready(), nonce="n1")
    failed = finished(first, "FAILED")
    failed["observations"].update(metric_obs(0.9, 0.9, 0.9))
    paused = run(spec, failed, nonce="n1")
    assert paused.launches == [] and condition(paused, "Paused")["status"] == "True"
    retry = run(spec, then(paused), nonce="n2")
    assert [e["trigger"] for e in retry.launches] == ["by-hand"]
    resumed = run(spec, finished(retry, "SUCCEEDED"), nonce="n2")
    assert condition(resumed, "Paused")["status"] == "False"


# -- suspend, dry run, history ----------------------------------------------------------------


def test_suspend_fires_nothing_and_keeps_the_nonce_for_later() -> None:
    suspended = run(make_spec(MANUAL, suspend=True), ready(), nonce="n1")
    assert suspended.launches == []
    assert condition(suspended, "Suspended")["status"] == "True"
    resumed = run(make_spec(MANUAL), then(suspended), nonce="n1")
    assert len(resumed.launches) == 1


def test_dry_run_records_would_trigger_and_launches_nothing() -> None:
    decision = run(make_spec(MANUAL, dryRun=True), ready(), nonce="n1")
    assert decision.launches == [] and decision.status["active"] == []
    assert [e.reason for e in decision.events] == ["WouldTrigger"]
    assert decision.status["recentRuns"][0]["state"] == "DryRun"


def test_history_keeps_only_the_configured_number_of_runs() -> None:
    spec = make_spec(MANUAL, successfulRunsHistoryLimit=2, failedRunsHistoryLimit=1)
    status: dict[str, Any] = ready()
    for i, outcome in enumerate(["FAILED", "SUCCEEDED", "FAILED", "SUCCEEDED", "SUCCEEDED"]):
        launched = run(spec, status, nonce=f"n{i}")
        status = finished(launched, outcome)
        status = then(run(spec, status, nonce=f"n{i}"))
    states = [r["state"] for r in status["recentRuns"]]
    assert sorted(states) == ["FAILED", "SUCCEEDED", "SUCCEEDED"]


def test_conditions_keep_their_transition_time_while_unchanged() -> None:
    first = run(make_spec(MANUAL), ready(), now=NOW)
    second = run(make_spec(MANUAL), then(first), now=NOW + timedelta(minutes=5))
    assert condition(second, "Ready")["lastTransitionTime"] == "2026-03-02T10:00:30Z"


def test_an_invalid_spec_is_reported_once_not_on_every_reconcile() -> None:
    errors = [FieldError("spec.triggers[0].schedule.cron", "not a cron expression")]
    first = invalid({}, errors, now=NOW, generation=2)
    again = invalid(first.status, errors, now=NOW, generation=2)
    assert [e.reason for e in first.events] == ["InvalidSpec"]
    assert again.events == []
    assert (
        condition(again, "Ready")["message"] == "spec.triggers[0].schedule.cron: "
        "not a cron expression"
    )


# -- what runs, and what does not ---------------------------------------------------------------


def test_running_tells_the_launch_error_instead_of_a_run_that_does_not_exist() -> None:
    first = run(make_spec(MANUAL), ready(), nonce="n1")
    status = then(first)
    status["active"][0]["launchError"] = {
        "reason": "KfpUnreachable",
        "message": "ReadTimeoutError: timed out",
        "time": "2026-03-02T10:00:30Z",
    }
    failing = run(make_spec(MANUAL), status, nonce="n1")
    running_condition = condition(failing, "Running")
    assert (running_condition["status"], running_condition["reason"]) == ("False", "KfpUnreachable")
    assert condition(first, "Running")["reason"] == "Launching"
    assert (
        condition(run(make_spec(MANUAL), running(first), nonce="n1"), "Running")["status"] == "True"
    )


def test_an_unreachable_kfp_makes_the_policy_not_ready() -> None:
    status = ready()
    status["observations"]["kfp"] = {"ok": False, "reason": "KfpUnreachable", "message": "refused"}
    decision = run(make_spec(MANUAL), status, nonce="n1")
    assert decision.launches == []
    assert condition(decision, "Ready")["reason"] == "KfpUnreachable"


def test_replace_collapses_firings_that_arrive_together_into_one_run() -> None:
    spec = make_spec(MANUAL, DATA, concurrencyPolicy="Replace")
    decision = run(spec, ready(**data_obs("", 2, "in/b")), nonce="n1")
    assert len(decision.launches) == 1 and len(decision.status["active"]) == 1
    assert decision.status["counters"]["collapsed"] == 1


def test_replace_also_replaces_a_run_still_being_created() -> None:
    spec = make_spec(MANUAL, concurrencyPolicy="Replace")
    first = run(spec, ready(), nonce="n1")
    second = run(spec, then(first), nonce="n2")  # the first run has no id yet
    replaced, new = second.status["active"]
    assert replaced["runKey"] == first.launches[0]["runKey"] and replaced["replaced"] is True
    assert second.launches == [new] and second.terminate == []
    assert condition(second, "Running")["message"] == new["runName"]


def test_a_queued_schedule_slot_past_its_starting_deadline_is_dropped() -> None:
    spec = make_spec(schedule(startingDeadlineSeconds=300), MANUAL, concurrencyPolicy="Queue")
    start = run(spec, ready(), nonce="n1")
    slot_time = NOW.replace(hour=11, minute=0, second=10)
    queued = run(spec, running(start), now=slot_time, nonce="n1")
    assert queued.status["queued"]["fireKey"] == "2026-03-02T11:00:00Z"
    late = run(spec, finished(queued, "SUCCEEDED"), now=slot_time.replace(minute=6), nonce="n1")
    assert late.launches == [] and late.status["queued"] is None
    assert "MissedSchedule" in [e.reason for e in late.events]


def test_a_queued_firing_vanishes_with_its_trigger() -> None:
    spec = make_spec(MANUAL, concurrencyPolicy="Queue")
    first = run(spec, ready(), nonce="n1")
    queued = run(spec, running(first), nonce="n2")
    other = {"name": "other", "manual": {"annotation": "flywheel.dev/other"}}
    gone = run(make_spec(other, concurrencyPolicy="Queue"), finished(queued, "SUCCEEDED"))
    assert gone.launches == [] and gone.status["queued"] is None


def test_readings_taken_before_a_resume_are_ignored() -> None:
    spec = make_spec(METRIC)
    suspended = run(make_spec(METRIC, suspend=True), ready(**metric_obs(0.1, 0.1, 0.1)))
    old_breach = metric_obs(0.9, 0.9, 0.9, at="2026-02-27T10:00:00Z")
    resumed = run(spec, then(suspended, **old_breach), now=NOW + timedelta(days=3))
    assert resumed.launches == [] and resumed.status["resumedTime"] == "2026-03-05T10:00:30Z"
    fresh = metric_obs(0.9, 0.9, 0.9, at="2026-03-05T10:01:00Z")
    assert len(run(spec, then(resumed, **fresh), now=NOW + timedelta(days=3, minutes=1)).launches)


def test_an_old_nonce_value_put_back_fires_nothing() -> None:
    spec = make_spec(MANUAL, concurrencyPolicy="Allow")
    first = run(spec, ready(), nonce="n1")
    second = run(spec, running(first), nonce="n2")
    back = run(spec, running(second), nonce="n1")
    assert back.launches == []


def test_a_nonce_reused_after_it_was_forgotten_gets_its_own_run() -> None:
    spec = make_spec(MANUAL, concurrencyPolicy="Allow")
    status: dict[str, Any] = ready()
    keys = []
    for i in range(22):  # "n0" falls out of the remembered values
        decision = run(spec, status, nonce="n0" if i in (0, 21) else f"n{i}")
        keys += [e["runKey"] for e in decision.launches]
        status = finished(decision, "SUCCEEDED")
    assert len(keys) == 22 and len(set(keys)) == 22


def test_forbid_keeps_the_watermark_so_skipped_objects_fire_after_the_run() -> None:
    spec = make_spec(MANUAL, DATA, concurrencyPolicy="Forbid")
    first = run(spec, ready(), nonce="n1")
    busy = running(first)
    busy["observations"].update(data_obs("", 2, "in/b"))
    skipped = run(spec, busy, nonce="n1")
    assert skipped.launches == [] and trigger_state(skipped, "new-data")["watermark"] == ""
    again = running(skipped)
    again["observations"].update(data_obs("", 2, "in/b"))
    assert run(spec, again, nonce="n1").events == []  # said once
    done = finished(skipped, "SUCCEEDED")
    done["observations"].update(data_obs("", 2, "in/b"))
    after = run(spec, done, nonce="n1")
    assert [e["trigger"] for e in after.launches] == ["new-data"]


# -- properties over random worlds ------------------------------------------------------------

THRESHOLD, CLEAR = 0.5, 0.4


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0, allow_nan=False), max_size=30))
def test_with_a_clear_threshold_a_metric_fires_once_per_excursion(values: list[float]) -> None:
    """Launches equal the excursions: above the threshold after being armed, armed again only
    below the clear level; wobbling between the two never fires twice."""
    spec = hysteresis_spec(clear=CLEAR)
    status: dict[str, Any] = ready()
    armed, expected, launched = True, 0, 0
    for minute, value in enumerate(values):
        at = (NOW + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")
        decision = run(spec, then_status(status, metric_obs(value, at=at)))
        launched += len(decision.launches)
        status = decision.status
        if armed and value > THRESHOLD:
            armed, expected = False, expected + 1
        elif not armed and value < CLEAR:
            armed = True
    assert launched == expected


# One step of the world around a Replace policy: a new nonce, the shell doing its work (create
# the decided runs, drop never-created replaced ones), or KFP ending a run.
STEPS = st.lists(
    st.one_of(
        st.just(("nonce", 0)),
        st.just(("settle", 0)),
        st.tuples(st.just("end"), st.integers(min_value=0, max_value=5)),
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(STEPS)
def test_replace_keeps_at_most_one_live_run_and_terminates_every_run_it_replaces(
    steps: list[tuple[str, int]],
) -> None:
    spec = make_spec(MANUAL, DATA, concurrencyPolicy="Replace")
    status: dict[str, Any] = ready()
    runs: dict[str, str] = {}  # run id -> KFP state
    terminated: set[str] = set()
    keys: list[str] = []
    nonces = 0
    for step, index in steps:
        if step == "nonce":
            nonces += 1
        elif step == "settle":
            for entry in list(status.get("active", [])):
                if entry.get("runId"):
                    continue
                if entry.get("replaced"):
                    status["active"].remove(entry)  # never created, and never will be
                else:
                    entry["runId"] = f"id-{entry['runKey']}"
                    runs[entry["runId"]] = "RUNNING"
        elif step == "end" and runs:
            run_id = sorted(runs)[index % len(runs)]
            runs[run_id] = runs[run_id] if runs[run_id] != "RUNNING" else "SUCCEEDED"
        status["observations"] = {
            "pipeline": {"ok": True},
            "runs": {
                e["runKey"]: {"state": runs[e["runId"]]}
                for e in status.get("active", [])
                if e.get("runId")
            },
        }
        decision = run(spec, status, nonce=f"n{nonces}" if nonces else None)
        live = [e for e in decision.status["active"] if not e.get("replaced")]
        assert len(live) <= 1 and len(decision.launches) <= 1
        keys += [e["runKey"] for e in decision.launches]
        for run_id in decision.terminate:
            terminated.add(run_id)
            runs[run_id] = "CANCELED"
        for entry in decision.status["active"]:
            if entry.get("replaced") and entry.get("runId"):
                assert entry["runId"] in terminated
        status = copy.deepcopy(decision.status)
    assert len(keys) == len(set(keys))
    assert len(keys) == nonces


# -- a bad day: runs deleted in KFP, clock steps, nonces overwritten, refused creates -----------


def test_a_run_deleted_in_kfp_is_recorded_as_gone_with_an_event_and_frees_the_policy() -> None:
    spec = make_spec(MANUAL, concurrencyPolicy="Forbid")
    first = run(spec, ready(), nonce="n1")
    deleted = run(spec, observed(first, "DELETED"), nonce="n1")
    assert deleted.status["active"] == []
    assert [r["state"] for r in deleted.status["recentRuns"]] == ["Deleted"]
    assert "RunDeleted" in [e.reason for e in deleted.events]
    assert condition(deleted, "Running")["status"] == "False"
    assert deleted.status.get("consecutiveFailures", 0) == 0  # not the pipeline's failure
    assert len(run(spec, then(deleted), nonce="n2").launches) == 1


def test_a_schedule_keeps_firing_after_the_clock_steps_back_an_hour() -> None:
    spec = make_spec(schedule("*/5 * * * *"))
    ahead = NOW + timedelta(hours=1)  # the clock ran an hour fast: slot 11:05 fired
    start = run(spec, ready(), now=ahead.replace(minute=1))
    fired = run(spec, then(start), now=ahead.replace(minute=5, second=20))
    assert [e["fireKey"] for e in fired.launches] == ["2026-03-02T11:05:00Z"]
    back = NOW.replace(minute=5, second=40)  # corrected: 10:05:40, slot 11:05 "in the future"
    stepped = run(spec, finished(fired, "SUCCEEDED", at=back), now=back)
    assert stepped.status["nextScheduleTime"] == "2026-03-02T10:10:00Z"
    at_slot = run(spec, then(stepped), now=NOW.replace(minute=10, second=10))
    assert [e["fireKey"] for e in at_slot.launches] == ["2026-03-02T10:10:00Z"]


def test_a_cooldown_stamped_before_a_backward_clock_step_ends_on_the_new_clock() -> None:
    spec = make_spec(METRIC, cooldown={"afterSuccessSeconds": 60})
    status = ready(**metric_obs(0.9, 0.9, 0.9))
    status["lastSuccessTime"] = "2026-03-02T11:00:00Z"  # an hour ahead of NOW
    held = run(spec, status)
    assert held.launches == [] and held.status["lastSuccessTime"] == "2026-03-02T10:00:30Z"
    later = then(held, **metric_obs(0.9, 0.9, 0.9))
    assert len(run(spec, later, now=NOW + timedelta(seconds=61)).launches) == 1


def test_nonces_overwritten_before_a_decision_each_fire() -> None:
    spec = make_spec(MANUAL, concurrencyPolicy="Allow")
    earlier = {"flywheel.dev/run-nonce": ["n1", "n2"]}
    decision = decide(
        parse_policy(spec),
        ready(),
        annotations={"flywheel.dev/run-nonce": "n3"},
        now=NOW,
        generation=1,
        uid=UID,
        name="churn",
        earlier_nonces=earlier,
    )
    assert [e["reason"] for e in decision.launches] == [
        "manual nonce n1",
        "manual nonce n2",
        "manual nonce n3",
    ]
    assert trigger_state(decision, "by-hand")["recentNonces"] == ["n1", "n2", "n3"]


def test_nonces_overwritten_under_forbid_are_skipped_with_an_event_never_silently() -> None:
    spec = make_spec(MANUAL, concurrencyPolicy="Forbid")
    decision = decide(
        parse_policy(spec),
        ready(),
        annotations={"flywheel.dev/run-nonce": "n2"},
        now=NOW,
        generation=1,
        uid=UID,
        name="churn",
        earlier_nonces={"flywheel.dev/run-nonce": ["n1"]},
    )
    assert [e["reason"] for e in decision.launches] == ["manual nonce n1"]
    assert any(e.reason == "Skipped" and "n2" in e.message for e in decision.events)


def test_a_create_refused_by_kfp_shows_as_run_created_false_kfp_refused() -> None:
    first = run(make_spec(MANUAL), ready(), nonce="n1")
    assert condition(first, "RunCreated")["reason"] == "Creating"
    status = then(first)
    status["active"][0]["launchError"] = {
        "reason": "KfpRefused",
        "message": "ApiException: (403) Forbidden",
        "time": "2026-03-02T10:00:30Z",
        "attempts": 1,
        "retryTime": "2026-03-02T10:00:40Z",
        "generation": 1,
    }
    refused = condition(run(make_spec(MANUAL), status, nonce="n1"), "RunCreated")
    assert (refused["status"], refused["reason"]) == ("False", "KfpRefused")
    assert "next at 2026-03-02T10:00:40Z or on a change of the spec" in refused["message"]
    created = condition(run(make_spec(MANUAL), running(first), nonce="n1"), "RunCreated")
    assert (created["status"], created["reason"]) == ("True", "RunsCreated")
