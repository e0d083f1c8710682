"""A round's steps, as the tuning components call them: suggest and record.

What KFP does around them (caching a task by its inputs, retrying it from the same input
artifacts) is what makes a killed round resume, so each step is called here as a retried task
would call it: from the same input journal, into a fresh output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.components.contract.workload import load_workload
from flywheel.components.errors import InvalidSpecError, JobFailedError
from flywheel.components.steps.runtime import TRIAL_EVENTS_VARIABLE
from flywheel.components.steps.tuning_rounds import (
    TrialCurves,
    TrialModel,
    record_trials,
    suggest_trials,
    trial_of,
    tuning_lineage,
)

from .workloads import write_workload

SEARCH = """
tuning:
  objective: {metric: test_rmse, type: Minimize}
  strategy: Random
  ranges:
    n_estimators: {type: integer, min: 10, max: 500}
    max_features: {type: categorical, values: [sqrt, log2]}
  max_jobs: 4
  max_parallel_jobs: 2
  random_seed: 3
"""


@pytest.fixture
def workload(tmp_path: Path) -> str:
    return str(write_workload(tmp_path / "workload", SEARCH))


def _model(folder: Path, trial: dict, objective: float | None) -> TrialModel:
    """A trained trial's model as a record step is handed it: ``train_model``'s metadata, its
    hyperparameters as KFP's Struct hands them over (every number a float)."""
    path = folder / f"model-{trial['number']}.tar.gz"
    path.write_text(f"model of trial {trial['number']}")
    floated = {
        k: float(v) if isinstance(v, int) else v for k, v in trial["hyperparameters"].items()
    }
    metrics = {"train_rmse": 0.1} | ({} if objective is None else {"test_rmse": objective})
    metadata = {"job_name": f"job-{trial['number']}", "hyperparameters": floated}
    return TrialModel(path, {**metadata, "metrics": metrics})


def test_a_round_keeps_the_static_hyperparameters_beside_the_searched_ones(
    workload: str, tmp_path: Path
) -> None:
    trials = suggest_trials(
        workload_path=workload,
        hyperparameters={"seed": 11, "n_estimators": 3},
        journal_in=None,
        journal_out=tmp_path / "study",
    )
    assert [t["number"] for t in trials] == [0, 1]
    for trial in trials:
        assert trial["hyperparameters"]["seed"] == 11
        assert 10 <= trial["hyperparameters"]["n_estimators"] <= 500  # the search sets it


def test_a_retried_suggest_asks_the_same_trials_so_finished_ones_come_from_the_cache(
    workload: str, tmp_path: Path
) -> None:
    first = suggest_trials(
        workload_path=workload, hyperparameters={}, journal_in=None, journal_out=tmp_path / "a"
    )
    again = suggest_trials(
        workload_path=workload, hyperparameters={}, journal_in=None, journal_out=tmp_path / "b"
    )
    # Same trials, same hyperparameters: each train task's inputs, so its cache key, are the same.
    assert again == first


def test_a_killed_round_resumes_from_the_journal_without_rerunning_finished_trials(
    workload: str, tmp_path: Path
) -> None:
    round_1 = suggest_trials(
        workload_path=workload, hyperparameters={}, journal_in=None, journal_out=tmp_path / "s1"
    )
    # Trial 1 was killed: only trial 0 reached the record step.
    recorded = record_trials(
        workload_path=workload,
        models=[_model(tmp_path, round_1[0], 0.7)],
        curves=[],
        journal_in=tmp_path / "s1",
        journal_out=tmp_path / "r1",
        best_in=None,
        best_out=tmp_path / "best1",
        run="run-1",
    )
    assert [(t["number"], t["state"]) for t in recorded.trials] == [(0, "COMPLETE"), (1, "RUNNING")]
    round_2 = suggest_trials(
        workload_path=workload,
        hyperparameters={},
        journal_in=tmp_path / "r1",
        journal_out=tmp_path / "s2",
    )
    assert round_2[0] == round_1[1]  # the unfinished trial first, as it was asked
    assert [t["number"] for t in round_2] == [1, 2]  # trial 0 is never asked again


def test_a_round_recorded_twice_tells_each_trial_once(workload: str, tmp_path: Path) -> None:
    trials = suggest_trials(
        workload_path=workload, hyperparameters={}, journal_in=None, journal_out=tmp_path / "s"
    )
    arguments = {
        "workload_path": workload,
        # In another order than asked: KFP does not promise the order of collected outputs.
        "models": [_model(tmp_path, trials[1], 0.4), _model(tmp_path, trials[0], 0.9)],
        "curves": [],
        "best_in": None,
        "best_out": tmp_path / "best",
        "run": "run-1",
    }
    once = record_trials(**arguments, journal_in=tmp_path / "s", journal_out=tmp_path / "r1")
    # A retry from its own output (the journal already told) changes nothing.
    twice = record_trials(**arguments, journal_in=tmp_path / "r1", journal_out=tmp_path / "r2")
    assert once.trials == twice.trials
    assert [(t["number"], t["objective"], t["best"]) for t in once.trials] == [
        (1, 0.4, True),
        (0, 0.9, False),
    ]
    assert once.remaining == 2


def test_the_best_model_so_far_is_carried_on_with_its_trial_in_the_lineage(
    workload: str, tmp_path: Path
) -> None:
    round_1 = suggest_trials(
        workload_path=workload, hyperparameters={}, journal_in=None, journal_out=tmp_path / "s1"
    )
    first = record_trials(
        workload_path=workload,
        models=[_model(tmp_path, round_1[0], 0.5), _model(tmp_path, round_1[1], 0.8)],
        curves=[],
        journal_in=tmp_path / "s1",
        journal_out=tmp_path / "r1",
        best_in=None,
        best_out=tmp_path / "best1",
        run="run-1",
    )
    round_2 = suggest_trials(
        workload_path=workload,
        hyperparameters={},
        journal_in=tmp_path / "r1",
        journal_out=tmp_path / "s2",
    )
    second = record_trials(
        workload_path=workload,
        models=[_model(tmp_path, round_2[0], 0.6), _model(tmp_path, round_2[1], 0.9)],
        curves=[],
        journal_in=tmp_path / "s2",
        journal_out=tmp_path / "r2",
        best_in=first.best,
        best_out=tmp_path / "best2",
        run="run-1",
    )
    assert second.best is not None and second.remaining == 0
    assert (tmp_path / "best2").read_text() == "model of trial 0"
    lineage = second.best.metadata["tuning"]
    assert lineage["trial"] == 0 and lineage["trials"] == 4 and lineage["run"] == "run-1"
    assert lineage["objective"] == {"metric": "test_rmse", "type": "Minimize", "value": 0.5}
    assert set(lineage["parameters"]) == {"n_estimators", "max_features"}
    assert lineage["parameters"] == round_1[0]["hyperparameters"]
    # Through KFP's metadata every number is a float; the registry gets the declared types back.
    floated = {
        **lineage,
        "trial": 0.0,
        "parameters": {**lineage["parameters"], "n_estimators": 7.0},
    }
    typed = tuning_lineage(floated, load_workload(workload))
    assert typed["trial"] == 0 and typed["parameters"]["n_estimators"] == 7
    assert isinstance(typed["parameters"]["n_estimators"], int)


def test_a_search_where_no_trial_reports_the_objective_fails_naming_the_metric(
    workload: str, tmp_path: Path
) -> None:
    journal = tmp_path / "s"
    trials = suggest_trials(
        workload_path=workload, hyperparameters={}, journal_in=None, journal_out=journal
    )
    for index in range(2):  # both rounds: the search is spent with nothing to register
        out = tmp_path / f"r{index}"
        call = {
            "workload_path": workload,
            "models": [_model(tmp_path, t, None) for t in trials],
            "curves": [],
            "journal_in": journal,
            "journal_out": out,
            "best_in": None,
            "best_out": tmp_path / "best",
            "run": "run-1",
        }
        if index == 0:
            assert record_trials(**call).best is None
            trials = suggest_trials(
                workload_path=workload,
                hyperparameters={},
                journal_in=out,
                journal_out=tmp_path / "s2",
            )
            journal = tmp_path / "s2"
            continue
        with pytest.raises(JobFailedError, match="none of its 4 trials reported 'test_rmse'"):
            record_trials(**call)


def test_a_model_is_matched_to_its_trial_by_the_searched_values_whatever_kfp_made_of_them():
    asked = [
        {"number": 4, "hyperparameters": {"n_estimators": 80, "max_features": "sqrt"}},
        {"number": 5, "hyperparameters": {"n_estimators": 80, "max_features": "log2"}},
    ]
    searched = frozenset({"n_estimators", "max_features"})
    trained = {"n_estimators": 80.0, "max_features": "log2", "seed": 7.0}  # through a Struct
    assert trial_of(trained, asked, searched) == 5
    assert trial_of({**trained, "n_estimators": 81.0}, asked, searched) is None


def test_a_model_no_trial_asked_for_is_refused_naming_the_models(
    workload: str, tmp_path: Path
) -> None:
    trials = suggest_trials(
        workload_path=workload, hyperparameters={}, journal_in=None, journal_out=tmp_path / "s"
    )
    stranger = {"number": 9, "hyperparameters": {"n_estimators": 1, "max_features": "sqrt"}}
    with pytest.raises(InvalidSpecError) as refused:
        record_trials(
            workload_path=workload,
            models=[_model(tmp_path, trials[0], 0.5), _model(tmp_path, stranger, 0.1)],
            curves=[],
            journal_in=tmp_path / "s",
            journal_out=tmp_path / "r",
            best_in=None,
            best_out=tmp_path / "best",
            run="run-1",
        )
    assert refused.value.field == "models" and "matches no trial the study asked" in str(
        refused.value
    )


def test_early_stopping_judges_a_trial_by_the_series_its_job_logged(tmp_path: Path) -> None:
    search = SEARCH.replace("strategy: Random", "strategy: Random\n  early_stopping: Auto")
    workload = str(
        write_workload(tmp_path / "stopping", search.replace("max_jobs: 4", "max_jobs: 8"))
    )
    journal, best = None, None
    states = {}
    # Three rounds: trials learning steadily to 0.2, then one stuck far above them at every step.
    for index, curve in enumerate(([0.9, 0.5, 0.2], [0.9, 0.5, 0.2], [3.0, 3.0, 2.9])):
        asked = suggest_trials(
            workload_path=workload,
            hyperparameters={},
            journal_in=journal,
            journal_out=tmp_path / f"s{index}",
        )
        models, curves = [], []
        for trial in asked:
            model = _model(tmp_path, trial, curve[-1])
            series = {"test_rmse": [[step, value] for step, value in enumerate(curve)]}
            file = tmp_path / f"metrics-{trial['number']}.json"
            file.write_text(json.dumps({"job_name": model.metadata["job_name"], "series": series}))
            models.append(model)
            curves.append(TrialCurves.read(file))
        recorded = record_trials(
            workload_path=workload,
            models=models,
            curves=curves,
            journal_in=tmp_path / f"s{index}",
            journal_out=tmp_path / f"r{index}",
            best_in=best,
            best_out=tmp_path / f"best{index}",
            run="run-1",
        )
        journal, best = tmp_path / f"r{index}", recorded.best
        states.update({t["number"]: t["state"] for t in recorded.trials})
    assert [states[n] for n in range(4)] == ["COMPLETE"] * 4
    assert [states[n] for n in (4, 5)] == ["PRUNED", "PRUNED"]


def test_a_trained_trial_is_one_event_line_for_the_live_view(
    workload: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv(TRIAL_EVENTS_VARIABLE, str(events))
    trials = suggest_trials(
        workload_path=workload, hyperparameters={}, journal_in=None, journal_out=tmp_path / "s"
    )
    [asked] = [json.loads(line) for line in events.read_text().splitlines()]
    assert asked == {"event": "asked", "metric": "test_rmse", "trials": trials}
