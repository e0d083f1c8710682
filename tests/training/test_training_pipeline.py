"""The training pipeline end to end through kfp.local, on the QSAR example and real ChEMBL data."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from flywheel.components.registry import LocalModelRegistry
from flywheel.pipelines.local_runner import PipelineFailed
from flywheel.pipelines.training_run import TrainingRequest, run_training

from .conftest import QSAR_WORKLOAD

pytestmark = pytest.mark.e2e
FAST = {"n_estimators": "25", "n_bits": "1024"}


def _request(tmp_path: Path, **overrides) -> TrainingRequest:
    fields = {
        "workload": str(QSAR_WORKLOAD),
        "hyperparameters": FAST,
        "registry": str(tmp_path / "registry"),
        "pipeline_root": str(tmp_path / "runs"),
    }
    return TrainingRequest(**{**fields, **overrides})


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("training")
    return tmp_path, run_training(_request(tmp_path))


def test_first_run_registers_an_evaluated_champion_with_lineage(first_run) -> None:
    tmp_path, outcome = first_run
    registry = LocalModelRegistry(tmp_path / "registry")
    (version,) = registry.versions("qsar-pic50")
    assert outcome.promoted and version.stage == "champion"
    assert set(version.metrics) >= {"rmse", "mae", "r2"}
    assert all(math.isfinite(v) for v in version.metrics.values())
    assert 0 < version.metrics["rmse"] < 1.5
    assert version.hyperparameters["n_estimators"] == 25
    lineage = version.lineage
    assert lineage["data"]["train"]["sha256"] and lineage["data"]["test"]["rows"] > 0
    assert lineage["code"]["entry_point"] == "train.py" and len(lineage["code"]["sha256"]) == 64
    assert lineage["run"]["name"].startswith("flywheel-training-")
    assert lineage["training"]["compute"] == "local"
    assert Path(version.model_uri).is_file()
    assert "test_rmse" in lineage["training"]["metrics"]


def test_second_run_with_unchanged_inputs_executes_nothing(first_run) -> None:
    tmp_path, first = first_run
    again = run_training(_request(tmp_path))
    assert again.run.reused and again.run.tasks.started == []
    assert again.run.run_dir == first.run.run_dir
    assert again.version.version == 1 and again.version.stage == "champion"
    assert len(LocalModelRegistry(tmp_path / "registry").versions("qsar-pic50")) == 1


def test_without_the_last_runs_record_only_the_registry_steps_run_again(first_run) -> None:
    tmp_path, _ = first_run
    (tmp_path / "runs" / "registry-states.json").unlink()  # as if another run wrote last
    again = run_training(_request(tmp_path))
    assert not again.run.reused
    assert set(again.run.tasks.started) == {"score-champion", "register-model", "decide-promotion"}
    assert again.version.version == 1 and not again.promoted  # already the champion


def test_an_unchanged_run_without_the_cache_gives_the_same_model_bytes_and_no_new_version(
    first_run,
) -> None:
    tmp_path, first = first_run
    again = run_training(_request(tmp_path, cache=False))
    assert {"train-model", "register-model"} <= set(again.run.tasks.started)
    assert again.version.model_sha256 == first.version.model_sha256
    assert again.version.version == 1 and not again.promoted
    assert len(LocalModelRegistry(tmp_path / "registry").versions("qsar-pic50")) == 1


def test_a_worse_candidate_is_registered_but_not_promoted(first_run) -> None:
    tmp_path, _ = first_run
    worse = run_training(
        _request(tmp_path, hyperparameters={**FAST, "n_estimators": "1", "max_depth": "1"})
    )
    assert worse.version.version == 2 and worse.version.stage == "candidate" and not worse.promoted
    assert LocalModelRegistry(tmp_path / "registry").champion("qsar-pic50").version == 1


def test_crashing_script_fails_the_pipeline_with_its_own_message(tmp_path: Path) -> None:
    workload = tmp_path / "crashing"
    shutil.copytree(QSAR_WORKLOAD.parent, workload)
    script = workload / "train.py"
    script.write_text(
        script.read_text().replace(
            "    params = hyperparameters()\n",
            "    params = hyperparameters()\n    raise RuntimeError('assay table is corrupt')\n",
        )
    )
    with pytest.raises(
        PipelineFailed, match=r"train-model failed: .*RuntimeError: assay table is corrupt"
    ) as failure:
        run_training(_request(tmp_path, workload=str(workload / "workload.yaml")))
    assert LocalModelRegistry(tmp_path / "registry").versions("qsar-pic50") == []
    *_, traceback, last = str(failure.value).splitlines()
    assert "  raise RuntimeError('assay table is corrupt')" in str(failure.value)
    assert traceback == "  RuntimeError: assay table is corrupt"
    task_log = Path(last.removeprefix("log: "))
    assert task_log.name == "task.log" and task_log.parent.name == "train-model"
    assert "Traceback (most recent call last):" in task_log.read_text()


def test_a_new_champion_makes_the_cached_registry_steps_run_again(first_run) -> None:
    tmp_path, _ = first_run
    registry = LocalModelRegistry(tmp_path / "registry")
    registry.promote("qsar-pic50", 2, "by hand, to test the cache")
    again = run_training(_request(tmp_path))
    started = set(again.run.tasks.started)
    assert not {"prepare-data", "train-model", "evaluate-model"} & started
    assert {"register-model", "score-champion", "decide-promotion", "promote-model"} <= started
    assert again.promoted and registry.champion("qsar-pic50").version == 1
