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
    # The MLflow server the trials were tracked in; None where mlflow is not installed.
    tracking_uri: str | None = None


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str | None) -> Run:
    home = tmp_path_factory.mktemp("home")
    environment = {**os.environ, "COLUMNS": "160"}
    if mlflow_server:  # the suite turns tracking off; this run is tracked
        environment["MLFLOW_TRACKING_URI"] = mlflow_server
        environment.pop("FLYWHEEL_TRACKING", None)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "flywheel.pipelines.cli", "--home", str(home), "run", "tuning"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=home,
        env=environment,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return Run(home, done.stdout, time.monotonic() - started, mlflow_server)


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


def test_every_trial_is_tracked_and_the_winner_and_its_version_point_at_each_other(
    run: Run,
) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(run.tracking_uri or "")
    experiment = client.get_experiment_by_name("qsar-pic50") if run.tracking_uri else None
    if experiment is None:
        pytest.skip("mlflow is not installed (the dev extra installs it)")
    trials = client.search_runs([experiment.experiment_id])
    assert len(trials) == 4  # max_jobs: 4, one tracking run each
    printed = sorted(float(value) for _, _, value in TRIAL_LINE.findall(run.stdout))
    assert sorted(t.data.metrics["test_rmse"] for t in trials) == pytest.approx(printed, abs=1e-4)
    for trial in trials:
        assert [p.step for p in client.get_metric_history(trial.info.run_id, "test_rmse")] == [0]
        assert {"n_estimators", "min_samples_leaf", "max_features"} <= set(trial.data.params)
        assert trial.data.tags["flywheel.objective"] == "test_rmse"
    (winner,) = [t for t in trials if "flywheel.model_version" in t.data.tags]
    version = LocalModelRegistry(run.home / "registry").get("qsar-pic50", 1)
    assert version.lineage["training"]["tracking_run_id"] == winner.info.run_id
    assert version.lineage["training"]["tracking_uri"] == run.tracking_uri
    assert winner.data.tags["flywheel.model_version"] == "1"
    assert winner.data.tags["flywheel.registry"] == str(run.home / "registry")
    assert winner.data.metrics["rmse"] == pytest.approx(version.metrics["rmse"])
    show = ("--home", str(run.home), "registry", "show", "qsar-pic50")
    shown = subprocess.run(
        [sys.executable, "-m", "flywheel.pipelines.cli", *show],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"  tracking: MLflow run {winner.info.run_id} at {run.tracking_uri}\n" in shown


def test_runs_compare_ranks_the_trials_by_the_objective_and_plots_their_curves(
    run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    if run.tracking_uri is None:
        pytest.skip("mlflow is not installed (the dev extra installs it)")
    from flywheel.pipelines.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    listed = main(["runs", "list", "--workload", "qsar-pic50", "--tracking-uri", run.tracking_uri])
    table = capsys.readouterr().out
    assert listed == 0 and "4 runs in " in table and "by test_rmse (minimize)" in table
    names = re.findall(r"^│ (qsar-pic50-\w+)", table, re.MULTILINE)
    png = tmp_path / "curves.png"
    status = main(
        ["runs", "compare", *names[:3], "--plot", str(png), "--tracking-uri", run.tracking_uri]
    )
    compared = capsys.readouterr().out
    assert status == 0
    rows = [line for line in compared.splitlines() if line.startswith("│ qsar-pic50-")]
    assert [row.split()[1] for row in rows] == names[:3]  # the list's order: best first
    header = next(line for line in compared.splitlines() if line.startswith("┃"))
    objective = [cell.strip() for cell in header.split("┃")].index("test_rmse *")
    values = [float(row.split("│")[objective]) for row in rows]
    assert values == sorted(values)
    assert rows[0].split("│")[-2].strip() == "v1"  # the winner's registered version
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
