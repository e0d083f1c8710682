"""The compiled tuning pipeline runs the rounds it was built for (builtin:qsar-tuning: 2 rounds of
2 trials); a workload whose search does not fill them is refused in one line naming
``tuning.max_jobs``, before any trial runs: by the first suggest step, which holds the built
rounds as constants, and by ``flywheel submit`` and ``flywheel run pipeline`` before they start
a run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flywheel.components.contract.workload import load_workload
from flywheel.components.errors import InvalidSpecError
from flywheel.components.steps.tuning_rounds import (
    TrialModel,
    check_compiled_rounds,
    record_trials,
    suggest_trials,
)
from flywheel.operators.kfp_standin import KfpStandIn
from flywheel.pipelines.catalog import PIPELINES
from flywheel.pipelines.cli import main
from flywheel.pipelines.preflight import check_tuning_rounds, compiled_rounds

from .workloads import write_workload

REPO = Path(__file__).resolve().parents[2]
REFUSAL = (
    "tuning.max_jobs: 12 trials, 3 at a time, take 4 rounds, but this pipeline was compiled "
    "for 2 rounds of 2 trials and runs every one; set max_jobs to 4 to 6, or run the workload "
    "with `flywheel run tuning`"
)


def _search(max_jobs: int, max_parallel_jobs: int) -> str:
    return (
        "tuning:\n  objective: {metric: test_rmse, type: Minimize}\n  strategy: Random\n"
        "  ranges:\n    n_estimators: {type: integer, min: 10, max: 500}\n"
        f"  max_jobs: {max_jobs}\n  max_parallel_jobs: {max_parallel_jobs}\n  random_seed: 3\n"
    )


@pytest.fixture
def too_big(tmp_path: Path) -> str:
    """A search of 12 trials, 3 at a time: 4 rounds, where the compiled pipeline has 2."""
    return str(write_workload(tmp_path / "too-big", _search(12, 3)))


def test_the_first_suggest_task_holds_the_rounds_the_pipeline_was_built_for() -> None:
    assert compiled_rounds(PIPELINES["tuning"]) == (2, 2)
    assert all(compiled_rounds(p) is None for name, p in PIPELINES.items() if name != "tuning")
    # The shipped file too: a cluster's first suggest task gets the same constants.
    for shipped in (
        REPO / "pipelines/compiled/tuning.yaml",
        REPO / "manifests/pipelines/flywheel-tuning.yaml",
    ):
        documents = list(yaml.safe_load_all(shipped.read_text()))
        ir = next(
            d.get("spec", {}).get("pipelineSpec", d)
            for d in documents
            if d and ("root" in d or "pipelineSpec" in d.get("spec", {}))
        )
        tasks = {
            name: task
            for component in ir["components"].values()
            for name, task in component.get("dag", {}).get("tasks", {}).items()
        }
        first = tasks["suggest-trials"]["inputs"]["parameters"]
        assert first["rounds"]["runtimeValue"]["constant"] == 2
        assert first["round_size"]["runtimeValue"]["constant"] == 2
        assert "rounds" not in tasks["suggest-trials-2"]["inputs"].get("parameters", {})


def test_the_first_suggest_step_refuses_a_search_needing_more_rounds_before_any_trial(
    too_big: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidSpecError) as refused:
        suggest_trials(
            workload_path=too_big,
            hyperparameters={},
            journal_in=None,
            journal_out=tmp_path / "study",
            compiled_rounds=2,
            compiled_round_size=2,
        )
    assert str(refused.value).startswith(REFUSAL) and "\n" not in str(refused.value)
    assert not (tmp_path / "study").exists()  # no study, so no trial was asked


@pytest.mark.parametrize(
    ("max_jobs", "max_parallel_jobs", "fits"),
    [
        (4, 2, True),  # the built-in search: 2 full rounds
        (3, 2, True),  # the second round holds one trial
        (6, 3, True),  # rounds of 3, two at a time: as many rounds, run 2 at once
        (5, 2, False),  # 3 rounds: the third would never run
        (2, 2, False),  # 1 round: the second would be an empty loop
        (4, 1, False),  # 4 rounds of 1
    ],
)
def test_a_search_fits_when_it_takes_as_many_rounds_as_were_compiled(
    tmp_path: Path, max_jobs: int, max_parallel_jobs: int, fits: bool
) -> None:
    search = load_workload(write_workload(tmp_path / "w", _search(max_jobs, max_parallel_jobs)))
    assert search.tuning is not None
    if fits:
        check_compiled_rounds(search.tuning, 2, 2)
        return
    with pytest.raises(InvalidSpecError, match=r"^tuning\.max_jobs: .* compiled for 2 rounds"):
        check_compiled_rounds(search.tuning, 2, 2)


def test_a_round_with_no_trials_carries_the_best_model_on_unchanged(tmp_path: Path) -> None:
    workload = str(write_workload(tmp_path / "w", _search(2, 2)))
    trials = suggest_trials(
        workload_path=workload, hyperparameters={}, journal_in=None, journal_out=tmp_path / "s1"
    )
    models = []
    for trial, objective in zip(trials, (0.8, 0.3), strict=True):
        path = tmp_path / f"model-{trial['number']}.tar.gz"
        path.write_text(f"model of trial {trial['number']}")
        metadata = {"job_name": f"job-{trial['number']}", "metrics": {"test_rmse": objective}}
        models.append(TrialModel(path, {**metadata, "hyperparameters": trial["hyperparameters"]}))
    first = record_trials(
        workload_path=workload,
        models=models,
        curves=[],
        journal_in=tmp_path / "s1",
        journal_out=tmp_path / "r1",
        best_in=None,
        best_out=tmp_path / "best1",
        run="run-1",
    )
    assert first.best is not None and first.remaining == 0
    # The search is done: the next round asks nothing, and its record step collects nothing.
    assert (
        suggest_trials(
            workload_path=workload,
            hyperparameters={},
            journal_in=tmp_path / "r1",
            journal_out=tmp_path / "s2",
        )
        == []
    )
    carried = record_trials(
        workload_path=workload,
        models=[],
        curves=[],
        journal_in=tmp_path / "s2",
        journal_out=tmp_path / "r2",
        best_in=first.best,
        best_out=tmp_path / "best2",
        run="run-1",
    )
    assert (tmp_path / "best2").read_bytes() == (tmp_path / "best1").read_bytes()
    assert carried.best is not None and carried.best.metadata == first.best.metadata
    assert carried.trials == first.trials and carried.remaining == 0


def test_the_preflight_leaves_sagemaker_and_unreadable_workloads_to_the_tasks(
    too_big: str,
) -> None:
    tuning = PIPELINES["tuning"]
    check_tuning_rounds(tuning, {"workload": too_big, "compute": "sagemaker"})  # one job
    check_tuning_rounds(tuning, {"workload": "s3://bucket/bundles/abc.tar.gz"})
    check_tuning_rounds(tuning, {})  # the default, builtin:qsar-tuning, fits
    check_tuning_rounds(PIPELINES["training"], {"workload": too_big})  # no rounds there
    with pytest.raises(InvalidSpecError, match=r"^tuning\.max_jobs: "):
        check_tuning_rounds(tuning, {"workload": too_big})


@pytest.fixture
def kfp_api():
    with KfpStandIn() as api:
        yield api


@pytest.mark.parametrize("how", ["--param", "--workload"])
def test_submit_refuses_a_search_the_compiled_rounds_cannot_hold_before_starting_a_run(
    kfp_api: KfpStandIn, capsys: pytest.CaptureFixture[str], too_big: str, how: str
) -> None:
    given = ["--param", f"workload={too_big}"] if how == "--param" else ["--workload", too_big]
    status = main(
        ["submit", "tuning", "--host", kfp_api.url, "--run-name", "too-big", *given]
        + (["--bundle-to", "s3://bucket/bundles"] if how == "--workload" else [])
    )
    error = capsys.readouterr().err
    assert status == 2, error
    assert error.startswith(f"flywheel: error: {REFUSAL}") and error.count("\n") == 1
    assert kfp_api.runs_named("too-big") == []


def test_run_pipeline_refuses_a_search_the_compiled_rounds_cannot_hold_before_any_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], too_big: str
) -> None:
    home = tmp_path / "home"
    status = main(
        ["--home", str(home), "run", "pipeline", "tuning", "--param", f"workload={too_big}"]
    )
    error = capsys.readouterr().err
    assert status == 2, error
    assert error.startswith(f"flywheel: error: {REFUSAL}") and error.count("\n") == 1
    assert not (home / "runs").exists()


def test_the_suggest_component_refuses_on_kfp_local_as_its_step_does(
    too_big: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from kfp import local

    from flywheel.components import suggest_trials as suggest_component

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "root"),
        enable_caching=False,
        raise_on_error=True,
    )
    with pytest.raises(RuntimeError):
        suggest_component(workload=too_big, hyperparameters={}, rounds=2, round_size=2)
    shown = capfd.readouterr()
    assert REFUSAL in shown.out + shown.err  # the task's log: its one-line failure
    assert not list((tmp_path / "root").rglob("study"))  # refused before a study was written
