"""With no ``MLFLOW_TRACKING_URI``, runs are tracked in a SQLite store in Flywheel's home, and
``flywheel runs`` reads them back from there."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from flywheel.components.tracking import TrainingRecord, track_training
from flywheel.pipelines.cli import main
from flywheel.pipelines.defaults import Home
from flywheel.pipelines.tracking_setup import create_local_store, tracking_for_run


def _record(job: str, rate: float, losses: list[float]) -> TrainingRecord:
    return TrainingRecord(
        workload="toy",
        job_name=job,
        compute="local",
        hyperparameters={"rate": rate, "epochs": 3},
        digests={"code_sha256": "abc"},
        series={"loss": list(enumerate(losses, start=1))},
        objective="loss",
        objective_goal="minimize",
    )


def test_runs_are_tracked_in_the_homes_sqlite_store_and_listed_best_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if importlib.util.find_spec("mlflow") is None:
        pytest.skip("mlflow is not installed (the dev extra installs it)")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # unset; restored after the test
    monkeypatch.delenv("FLYWHEEL_TRACKING", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    home = Home(tmp_path / "home")
    with tracking_for_run(home, print) as uri:
        assert uri == f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
        assert os.environ["MLFLOW_TRACKING_URI"] == uri  # what the run's tasks inherit
        assert not (tmp_path / "home").exists()  # nothing written while inputs are checked
        create_local_store()  # as the runner does before the first task
        assert (tmp_path / "home" / "mlflow.db").is_file()
        track_training(_record("toy-slow", 0.1, [0.9, 0.7, 0.5]))
        track_training(_record("toy-fast", 0.3, [0.8, 0.4, 0.3]))
    assert os.environ["MLFLOW_TRACKING_URI"] == ""  # the command's environment, as it was
    capsys.readouterr()
    assert main(["--home", str(home.root), "runs", "list"]) == 0
    listed = capsys.readouterr().out
    assert f"2 runs in {uri}, by loss (minimize)" in listed
    rows = [line.split("│")[1:-1] for line in listed.splitlines() if line.startswith("│")]
    # Best first; only the parameter that differs; the final loss; no version registered.
    assert [[cell.strip() for cell in row] for row in rows] == [
        ["toy-fast", "0.3", "0.3", "-"],
        ["toy-slow", "0.1", "0.5", "-"],
    ]
    png = tmp_path / "curves.png"
    assert (
        main(
            [
                "--home",
                str(home.root),
                "runs",
                "compare",
                "toy-slow",
                "toy-fast",
                "--plot",
                str(png),
            ]
        )
        == 0
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_listing_an_empty_home_creates_nothing_and_an_unknown_run_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if importlib.util.find_spec("mlflow") is None:
        pytest.skip("mlflow is not installed (the dev extra installs it)")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    monkeypatch.delenv("FLYWHEEL_TRACKING", raising=False)
    home = tmp_path / "home"
    assert main(["--home", str(home), "runs", "list"]) == 0
    assert capsys.readouterr().out.startswith("no tracked runs in sqlite:///")
    assert main(["--home", str(home), "runs", "compare", "nope"]) == 2
    assert "nothing is tracked in sqlite:///" in capsys.readouterr().err
    assert not home.exists()  # reading never creates the store
    with tracking_for_run(Home(home), print):
        create_local_store()
    assert main(["--home", str(home), "runs", "compare", "nope"]) == 2
    assert capsys.readouterr().err.strip() == (
        "flywheel: error: RUN: no tracked run has the id or name 'nope'"
    )


def test_a_trial_its_pruner_stopped_is_recorded_killed_with_its_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec("mlflow") is None:
        pytest.skip("mlflow is not installed (the dev extra installs it)")
    from dataclasses import replace

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("FLYWHEEL_TRACKING", raising=False)
    finished = track_training(_record("toy-whole", 0.1, [0.9, 0.7, 0.5]))
    stopped = track_training(replace(_record("toy-pruned", 0.3, [2.0]), pruned_at_step=1))
    client = MlflowClient(uri)
    whole, pruned = client.get_run(finished), client.get_run(stopped)
    assert (whole.info.status, pruned.info.status) == ("FINISHED", "KILLED")
    assert "flywheel.pruned_at_step" not in whole.data.tags
    assert pruned.data.tags["flywheel.pruned_at_step"] == "1"
