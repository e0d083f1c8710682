"""The tuning pipeline's compiled IR: rounds of ParallelFor trials bounded by max_parallel_jobs,
SageMaker's tuning job on the other branch, and the training pipeline's gate after register."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import compiler

from flywheel.components.contract.workload import load_workload
from flywheel.pipelines.tuning import build_tuning_pipeline, rounds_for

from .workloads import write_workload


def _ir(pipeline: Any, tmp_path: Path) -> dict[str, Any]:
    target = tmp_path / "tuning.yaml"
    compiler.Compiler().compile(pipeline, str(target))
    return next(yaml.safe_load_all(target.read_text()))


def _tasks(ir: dict[str, Any], component: str) -> dict[str, Any]:
    return ir["components"][component]["dag"]["tasks"]


def _branches(ir: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The If/Else on compute: ``sagemaker`` and ``kfp`` branch, each its task and its tasks."""
    root = ir["root"]["dag"]["tasks"]
    group = _tasks(ir, root["condition-branches-1"]["componentRef"]["name"])
    found = {}
    for task in group.values():
        tasks = _tasks(ir, task["componentRef"]["name"])
        found["sagemaker" if "tune-on-sagemaker" in tasks else "kfp"] = {
            "task": task,
            "tasks": tasks,
        }
    return found


def _kind(name: str) -> str:
    """``train-model-2`` -> ``train-model``: a task's component, whichever copy it is."""
    return name.rstrip("0123456789").rstrip("-")


@pytest.fixture(scope="module")
def ir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _ir(build_tuning_pipeline(), tmp_path_factory.mktemp("ir"))


def test_each_round_trains_its_trials_in_a_parallel_for_of_max_parallel_jobs(ir) -> None:
    search = load_workload("builtin:qsar-tuning").tuning
    branch = _branches(ir)["kfp"]["tasks"]
    loops = sorted(name for name in branch if name.startswith("for-loop"))
    assert len(loops) == rounds_for(search) == 2
    for loop in loops:
        task = branch[loop]
        assert task["iteratorPolicy"]["parallelismLimit"] == search.max_parallel_jobs
        assert task["parameterIterator"]["items"]["inputParameter"].endswith("-Output")
        inner = _tasks(ir, task["componentRef"]["name"])
        # One task per trial: the record step reads each trial's objective from its model.
        assert {_kind(name) for name in inner} == {"train-model"}


def test_rounds_chain_through_the_journal_and_the_best_model_so_far(ir) -> None:
    branch = _branches(ir)["kfp"]["tasks"]
    second = branch["suggest-trials-2"]["inputs"]["artifacts"]["journal"]["taskOutputArtifact"]
    assert second == {"outputArtifactKey": "study", "producerTask": "record-trials"}
    record = branch["record-trials-2"]["inputs"]["artifacts"]
    assert record["best_so_far"]["taskOutputArtifact"]["producerTask"] == "record-trials"
    assert "journal" not in branch["suggest-trials"]["inputs"].get("artifacts", {})
    evaluated = branch["evaluate-model-2"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]
    assert evaluated == {"outputArtifactKey": "best", "producerTask": "record-trials-2"}


def test_sagemaker_tunes_in_one_job_and_every_other_backend_in_kfp_trials(ir) -> None:
    branches = _branches(ir)
    condition = "inputs.parameter_values['pipelinechannel--compute'] == 'sagemaker'"
    assert branches["sagemaker"]["task"]["triggerPolicy"]["condition"] == condition
    assert branches["kfp"]["task"]["triggerPolicy"]["condition"] == f"!({condition})"
    sagemaker = branches["sagemaker"]["tasks"]
    assert not any(name.startswith(("train-model", "for-loop")) for name in sagemaker)
    model = sagemaker["evaluate-model"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]
    assert model == {"outputArtifactKey": "model", "producerTask": "tune-on-sagemaker"}


@pytest.mark.parametrize("backend", ["sagemaker", "kfp"])
def test_the_gate_follows_register_as_in_the_training_pipeline(ir, backend: str) -> None:
    tasks = _branches(ir)[backend]["tasks"]
    kinds = {_kind(name): name for name in tasks}
    gate = tasks[kinds["decide-promotion"]]
    assert kinds["register-model"] in gate["dependentTasks"]
    promote = tasks[kinds["condition"]]
    assert promote["triggerPolicy"]["condition"].endswith("== true")
    assert {_kind(n) for n in _tasks(ir, promote["componentRef"]["name"])} == {"promote-model"}


def test_rounds_are_unrolled_from_the_workload_the_pipeline_is_built_for(tmp_path: Path) -> None:
    text = (
        "tuning:\n  objective: {metric: test_rmse, type: Minimize}\n  strategy: Random\n"
        "  ranges:\n    n_estimators: {type: integer, min: 10, max: 90}\n"
        "  max_jobs: 7\n  max_parallel_jobs: 3\n"
    )
    search = load_workload(write_workload(tmp_path / "w", text)).tuning
    ir = _ir(build_tuning_pipeline(search=search), tmp_path)
    branch = _branches(ir)["kfp"]["tasks"]
    loops = [t for n, t in branch.items() if n.startswith("for-loop")]
    assert len(loops) == 3  # ceil(7 / 3)
    assert {t["iteratorPolicy"]["parallelismLimit"] for t in loops} == {3}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--workload", "builtin:qsar"], "tuning: the workload 'qsar-pic50'"),
        (["--hp", "n_bits=100"], "hyperparameters.n_bits: 100 is not one of [512, 1024"),
        (["--hp", "n_estimators=50"], "hyperparameters.n_estimators: is searched (tuning.ranges)"),
        (["--channel", "train=/tmp"], "--channel: is not offered by flywheel run tuning"),
    ],
)
def test_bad_tuning_runs_are_refused_in_one_line_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    from flywheel.pipelines.cli import main

    status = main(["--home", str(tmp_path / "home"), "run", "tuning", *arguments])
    error = capsys.readouterr().err
    assert status == 2, error
    assert error.startswith(f"flywheel: error: {message}") and error.count("\n") == 1
    assert not (tmp_path / "home").exists()


def test_on_eks_every_trial_of_every_round_is_a_gpu_pod_as_the_placement_says(
    tmp_path: Path,
) -> None:
    from flywheel.components.compute.eks import DEFAULT_PLACEMENT_FILE, load_placement
    from flywheel.pipelines.tuning import eks_tuning_pipeline

    placement = load_placement(DEFAULT_PLACEMENT_FILE)
    target = tmp_path / "eks.yaml"
    compiler.Compiler().compile(eks_tuning_pipeline(placement), str(target))
    ir, platform = yaml.safe_load_all(target.read_text())
    executors = ir["deploymentSpec"]["executors"]
    trials = sorted(name for name in executors if name.startswith("exec-train-model"))
    assert trials == ["exec-train-model", "exec-train-model-2"]  # one per round
    for name in trials:
        gpu = executors[name]["container"]["resources"]["accelerator"]
        assert gpu["resourceType"] == "nvidia.com/gpu"
        assert int(gpu["resourceCount"]) == placement.gpus
    assert set(platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]) == set(trials)
    others = [v for k, v in executors.items() if k not in trials]
    assert not any("accelerator" in v["container"].get("resources", {}) for v in others)
