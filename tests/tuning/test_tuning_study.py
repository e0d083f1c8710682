"""Optuna as the tuning engine for local and EKS runs: rounds suggested and recorded against a
journal file, resumed after a kill, and searching better than chance."""

from __future__ import annotations

import itertools
import statistics

import pytest

from flywheel.components.contract.tuning import ParameterRange, TuningSpec
from flywheel.components.errors import InvalidSpecError
from flywheel.components.steps.tuning_study import (
    TrialOutcome,
    best_trial,
    is_log_scale,
    outcome_from_metrics,
    record_round,
    suggest_round,
    trials_table,
)

OPTIMUM = (0.7, -1.3)


def quadratic(hyperparameters: dict) -> float:
    """A bowl with its minimum, 0, at OPTIMUM."""
    x, y = hyperparameters["x"], hyperparameters["y"]
    return (x - OPTIMUM[0]) ** 2 + (y - OPTIMUM[1]) ** 2


def spec(strategy: str = "Bayesian", seed: int | None = 1, **overrides) -> TuningSpec:
    values = {
        "objective_metric": "loss",
        "objective_type": "Minimize",
        "strategy": strategy,
        "ranges": (
            ParameterRange("x", "continuous", min=-5.0, max=5.0, scaling="Linear"),
            ParameterRange("y", "continuous", min=-5.0, max=5.0, scaling="Linear"),
        ),
        "max_jobs": 30,
        "max_parallel_jobs": 3,
        "random_seed": seed,
        **overrides,
    }
    return TuningSpec(**values)


def tune(journal, search: TuningSpec, objective=quadratic) -> None:
    """Run the whole search as the pipeline does: suggest a round, run it, record it."""
    while suggestions := suggest_round(journal, search, search.max_parallel_jobs):
        record_round(
            journal,
            search,
            {s["number"]: objective(s["hyperparameters"]) for s in suggestions},
        )


def test_bayesian_search_gets_closer_to_the_optimum_than_random_search_in_as_many_trials(
    tmp_path,
):
    found = {"Bayesian": [], "Random": []}
    for strategy, seed in itertools.product(found, range(5)):
        journal = tmp_path / f"{strategy}-{seed}.journal"
        tune(journal, spec(strategy, seed))
        assert len(trials_table(journal)) == 30
        found[strategy].append(best_trial(journal).objective)

    assert statistics.mean(found["Bayesian"]) < statistics.mean(found["Random"]), found


def test_a_killed_round_resumes_from_the_journal_without_rerunning_finished_trials(tmp_path):
    journal = tmp_path / "study.journal"
    search = spec()
    first = suggest_round(journal, search, 3)
    # The round is killed after two of its three trials were recorded.
    done = {s["number"]: quadratic(s["hyperparameters"]) for s in first[:2]}
    record_round(journal, search, done)

    retried = suggest_round(journal, search, 3)

    assert retried[0] == first[2], "the unfinished trial comes back as it was asked"
    assert not {s["number"] for s in retried} & set(done), "finished trials never run again"
    assert len(retried) == 3
    assert len(trials_table(journal)) == 5, "two new trials fill the round"


def test_recording_a_round_twice_tells_each_trial_once(tmp_path):
    journal = tmp_path / "study.journal"
    search = spec()
    (trial,) = suggest_round(journal, search, 1)

    assert record_round(journal, search, {trial["number"]: 2.5}) == {0: "COMPLETE"}
    assert record_round(journal, search, {str(trial["number"]): 9.0}) == {0: "COMPLETE"}

    assert best_trial(journal).objective == 2.5


def test_the_search_stops_at_max_jobs(tmp_path):
    journal = tmp_path / "study.journal"
    search = spec(max_jobs=4)
    tune(journal, search)

    assert suggest_round(journal, search, 3) == []
    assert [row.number for row in trials_table(journal)] != []
    assert len(trials_table(journal)) == 4


def test_grid_search_covers_the_grid_once(tmp_path):
    journal = tmp_path / "grid.journal"
    search = spec(
        "Grid",
        ranges=(
            ParameterRange("depth", "categorical", values=(2, 4, 8)),
            ParameterRange("kernel", "categorical", values=("rbf", "linear")),
        ),
        max_jobs=6,
        max_parallel_jobs=4,
    )
    tune(journal, search, lambda h: h["depth"] + (h["kernel"] == "rbf"))

    tried = [tuple(sorted(row.hyperparameters.items())) for row in trials_table(journal)]
    assert sorted(tried) == sorted(
        tuple(sorted({"depth": d, "kernel": k}.items()))
        for d, k in itertools.product((2, 4, 8), ("rbf", "linear"))
    )
    assert best_trial(journal).hyperparameters == {"depth": 2, "kernel": "linear"}


def test_the_table_is_sorted_by_the_objective_with_the_best_marked_and_failures_last(tmp_path):
    journal = tmp_path / "study.journal"
    search = spec(objective_type="Maximize")
    trials = suggest_round(journal, search, 3)
    record_round(journal, search, {trials[0]["number"]: 1.0, trials[1]["number"]: None})
    record_round(journal, search, {trials[2]["number"]: {"objective": 3.0}})

    rows = trials_table(journal)

    assert [(r.number, r.objective, r.best) for r in rows] == [
        (trials[2]["number"], 3.0, True),
        (trials[0]["number"], 1.0, False),
        (trials[1]["number"], None, False),
    ]
    assert rows[-1].state == "FAIL"


def test_early_stopping_prunes_a_trial_worse_than_the_median_at_each_step(tmp_path):
    journal = tmp_path / "study.journal"
    search = spec(early_stopping="Auto", max_jobs=7, max_parallel_jobs=7)
    trials = suggest_round(journal, search, 7)
    good = [outcome_from_metrics([1.0, 0.5, 0.2]) for _ in range(5)]
    states = record_round(
        journal, search, {t["number"]: o for t, o in zip(trials, good, strict=False)}
    )
    assert set(states.values()) == {"COMPLETE"}

    late = record_round(
        journal, search, {trials[5]["number"]: outcome_from_metrics([5.0, 4.0, 3.0])}
    )

    assert late == {trials[5]["number"]: "PRUNED"}
    assert best_trial(journal).objective == 0.2


def test_scaling_maps_to_optuna_s_log_and_reverse_log_draws_stay_in_range(tmp_path):
    assert is_log_scale(ParameterRange("lr", "continuous", min=1e-4, max=1e-1, scaling="Auto"))
    assert not is_log_scale(ParameterRange("d", "continuous", min=0.1, max=0.9, scaling="Auto"))
    assert not is_log_scale(ParameterRange("d", "continuous", min=-1, max=100, scaling="Auto"))
    journal = tmp_path / "study.journal"
    search = spec(
        "Random",
        ranges=(
            ParameterRange(
                "momentum", "continuous", min=0.9, max=0.9999, scaling="ReverseLogarithmic"
            ),
            ParameterRange("trees", "integer", min=10, max=1000, scaling="Logarithmic"),
        ),
        max_jobs=20,
    )
    values = [s["hyperparameters"] for s in suggest_round(journal, search, 20)]

    assert all(0.9 <= v["momentum"] <= 0.9999 for v in values)
    assert all(isinstance(v["trees"], int) and 10 <= v["trees"] <= 1000 for v in values)
    assert sum(v["trees"] < 100 for v in values) >= 5, "log scale tries the small end too"


def test_a_journal_of_another_search_or_a_bad_round_is_refused_with_nothing_written(tmp_path):
    journal = tmp_path / "study.journal"
    with pytest.raises(InvalidSpecError) as refused:
        suggest_round(journal, spec(), 0)
    assert refused.value.field == "round_size"
    assert not journal.exists()

    suggest_round(journal, spec(), 1)
    with pytest.raises(InvalidSpecError) as refused:
        suggest_round(journal, spec("Random"), 1)
    assert refused.value.field == "tuning"
    with pytest.raises(InvalidSpecError):
        record_round(journal, spec(), {42: 1.0})
    assert len(trials_table(journal)) == 1


def test_an_outcome_reads_the_metric_series_as_sagemaker_does():
    assert outcome_from_metrics([0.9, 0.4, 0.5]) == TrialOutcome(0.5, (0.9, 0.4, 0.5))
    assert outcome_from_metrics([]) == TrialOutcome(None, ())
    assert TrialOutcome.of(float("nan")) == TrialOutcome(None)
