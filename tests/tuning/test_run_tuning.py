"""``flywheel run tuning`` end to end on kfp.local: the README's command, the tiny QSAR search.

One run (about a minute on two cores) is shared by every test here: the command runs as a user
runs it, in a process of its own, and each test reads what it printed and what it registered.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from flywheel.components.contract.workload import load_workload
from flywheel.components.registry import LocalModelRegistry

TRIAL_LINE = re.compile(r"^trial (\d+): (.*) → test_rmse=([0-9.]+)$", re.MULTILINE)


@dataclass(frozen=True)
class Run:
    home: Path
    stdout: str
    seconds: float


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    home = tmp_path_factory.mktemp("home")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "flywheel.pipelines.cli", "--home", str(home), "run", "tuning"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=home,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return Run(home, done.stdout, time.monotonic() - started)


def _table_rows(stdout: str) -> list[list[str]]:
    """The trial table's rows: marker, trial, each searched hyperparameter, objective, state."""
    table = stdout.split("trials by test_rmse (minimize)")[1].split("qsar-pic50 version")[0]
    return [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in table.splitlines()
        if line.startswith("│")
    ]


def test_each_trial_prints_a_live_line_with_its_parameters_and_objective(run: Run) -> None:
    lines = TRIAL_LINE.findall(run.stdout)
    assert sorted(int(number) for number, _, _ in lines) == [0, 1, 2, 3]  # max_jobs: 4
    for _, parameters, _ in lines:
        assert set(re.findall(r"(\w+)=", parameters)) == {
            "n_estimators",
            "min_samples_leaf",
            "max_features",
        }
    # Each line comes before the table that ends the run.
    last = max(match.end() for match in TRIAL_LINE.finditer(run.stdout))
    assert last < run.stdout.index("trials by test_rmse")


def test_the_run_ends_with_the_trials_sorted_by_the_objective_best_marked(run: Run) -> None:
    rows = _table_rows(run.stdout)
    assert len(rows) == 4
    objectives = [float(row[-2]) for row in rows]
    assert objectives == sorted(objectives)  # test_rmse is minimized
    assert [row[0] for row in rows] == ["best", "", "", ""]
    printed = {int(n): float(v) for n, _, v in TRIAL_LINE.findall(run.stdout)}
    assert {int(row[1]): float(row[-2]) for row in rows} == pytest.approx(printed, abs=1e-4)


def test_the_best_trial_is_registered_with_the_trial_and_its_parameters_in_the_lineage(
    run: Run,
) -> None:
    best = _table_rows(run.stdout)[0]
    registry = LocalModelRegistry(run.home / "registry")
    version = registry.get("qsar-pic50", 1)
    tuning = version.lineage["tuning"]
    assert tuning["engine"] == "optuna" and tuning["strategy"] == "Bayesian"
    assert tuning["trial"] == int(best[1]) and tuning["trials"] == 4
    assert tuning["objective"]["metric"] == "test_rmse"
    assert tuning["objective"]["value"] == pytest.approx(float(best[-2]), abs=1e-4)
    assert tuning["run"].startswith("flywheel-tuning-")
    searched = load_workload("builtin:qsar-tuning").tuning.tuned
    assert set(tuning["parameters"]) == searched
    assert tuning["parameters"] == {
        k: v for k, v in version.hyperparameters.items() if k in searched
    }
    assert isinstance(tuning["parameters"]["n_estimators"], int)  # the declared type, not 263.0


def test_the_winner_went_through_the_gate_and_became_the_first_champion(run: Run) -> None:
    version = LocalModelRegistry(run.home / "registry").get("qsar-pic50", 1)
    assert version.stage == "champion"
    assert set(version.metrics) >= {"rmse", "mae", "r2"}  # the evaluate step's, as in training
    assert "champion (promoted)" in run.stdout
    print(f"flywheel run tuning took {run.seconds:.1f} s")


def test_the_tuned_model_beats_the_examples_default_hyperparameters_on_the_same_rows(
    run: Run,
) -> None:
    from flywheel.components.steps.train import train_model

    [prepared] = (run.home / "runs").glob("flywheel-tuning-*/prepare-data")
    defaults = train_model(
        workload_path="builtin:qsar-tuning",
        compute="local",
        hyperparameters={},
        train_path=prepared / "train",
        test_path=prepared / "test",
        model_path=run.home / "defaults.tar.gz",
        log=lambda _line: None,
    )
    version = LocalModelRegistry(run.home / "registry").get("qsar-pic50", 1)
    best = version.lineage["tuning"]["objective"]["value"]
    # Seeded, so the same every run; a search that kept a worse trial (or the wrong direction)
    # would lose to the defaults here.
    assert best < defaults.training_metrics["test_rmse"]
    print(f"test_rmse: defaults {defaults.training_metrics['test_rmse']}, tuned {best}")
