"""``runs compare``'s lining up: best first by the objective, the parameters that differ, the
metrics the runs share, and warnings for what cannot be compared."""

from __future__ import annotations

from flywheel.pipelines.tracked_runs import TrackedRun, compare


def _run(name: str, workload: str = "qsar", goal: str = "minimize", **metrics: float) -> TrackedRun:
    return TrackedRun(
        run_id=name,
        name=name,
        workload=workload,
        params={"n_estimators": name[-1], "seed": "7", "flywheel.compute": "local"},
        metrics=metrics,
        objective="test_rmse",
        objective_goal=goal,
    )


def test_runs_are_ranked_by_the_objective_and_only_differing_parameters_are_shown() -> None:
    compared = compare([_run("a1", test_rmse=0.5), _run("a2", test_rmse=0.3), _run("a3")])
    assert [run.name for run in compared.runs] == ["a2", "a1", "a3"]  # no objective: last
    assert compared.differing == ["n_estimators"]  # seed is the same; flywheel.* are not hps
    assert compared.objective == "test_rmse" and compared.objective_goal == "minimize"


def test_a_maximized_objective_ranks_the_highest_first() -> None:
    compared = compare(
        [
            _run("a1", "w", "maximize", r2=0.1, test_rmse=0.2),
            _run("a2", "w", "maximize", r2=0.2, test_rmse=0.4),
        ]
    )
    assert [run.name for run in compared.runs] == ["a2", "a1"]


def test_runs_of_different_workloads_warn_and_compare_only_shared_metrics() -> None:
    compared = compare(
        [_run("a1", "qsar", test_rmse=0.5, train_rmse=0.1), _run("b2", "other", test_rmse=0.4)]
    )
    assert compared.metrics == ["test_rmse"]
    assert compared.warnings == [
        "these runs are of different workloads (other, qsar): "
        "only the metrics they share are compared"
    ]


def test_a_metric_definition_that_never_matched_is_named_after_its_run() -> None:
    silent = TrackedRun(
        "x",
        "job-x",
        "qsar",
        {},
        {"test_rmse": 0.3},
        "test_rmse",
        "minimize",
        unmatched=("test_r2",),
    )
    compared = compare([silent])
    assert compared.warnings == ["job-x: metric definition(s) test_r2 matched no log line"]
