"""Where runs are tracked: a bad ``MLFLOW_TRACKING_URI`` is one line before any task runs, and
without mlflow tracking is off in one line."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from flywheel.components.errors import InvalidSpecError
from flywheel.components.tracking import check_tracking_uri, record, track_training
from flywheel.components.tracking.record import TrainingRecord
from flywheel.pipelines.cli import main

ARN = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/flywheel"


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:5000",
        "https://mlflow.example.com",
        "sqlite:////home/me/.flywheel/mlflow.db",
        "postgresql+psycopg2://user@db/mlflow",
        "file:///tmp/mlruns",
    ],
)
def test_a_tracking_uri_the_mlflow_client_understands_is_accepted(uri: str) -> None:
    assert check_tracking_uri(uri) == uri


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        # MLflow would take it for a folder and track into ./localhost:5000.
        ("localhost:5000", "is not a tracking URI"),
        ("htp://mlflow:5000", "is not a tracking URI"),
        ("http://", "is not a tracking URI"),
        ("arn:aws:sagemaker:us-east-1:1234:mlflow-tracking-server/x", "is not a SageMaker MLflow"),
    ],
)
def test_a_uri_the_client_would_misread_is_refused_naming_what_is_allowed(
    uri: str, says: str
) -> None:
    with pytest.raises(InvalidSpecError, match=says) as refused:
        check_tracking_uri(uri)
    assert str(refused.value).startswith("MLFLOW_TRACKING_URI: ")


def test_a_sagemaker_tracking_server_arn_needs_awss_plugin() -> None:
    if importlib.util.find_spec("sagemaker_mlflow") is not None:
        assert check_tracking_uri(ARN) == ARN
    else:
        with pytest.raises(InvalidSpecError, match="pip install sagemaker-mlflow"):
            check_tracking_uri(ARN)


def test_an_invalid_tracking_uri_is_one_line_before_any_task_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "localhost:5000")
    monkeypatch.delenv("FLYWHEEL_TRACKING", raising=False)
    status = main(["--home", str(tmp_path / "home"), "run", "training"])
    error = capsys.readouterr().err.strip()
    assert status == 2
    assert error.splitlines() == [
        "flywheel: error: MLFLOW_TRACKING_URI: 'localhost:5000' is not a tracking URI; use "
        "http(s)://host[:port], sqlite:///path, postgresql://, mysql://, mssql://, "
        "file:///path or a SageMaker MLflow tracking server ARN"
    ]
    assert not (tmp_path / "home").exists()


def test_without_mlflow_training_goes_on_and_one_line_says_tracking_is_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.delenv("FLYWHEEL_TRACKING", raising=False)
    monkeypatch.setattr(record, "tracking_installed", lambda: False)
    said: list[str] = []
    recorded = track_training(
        TrainingRecord("w", "w-123", "local", {}, {}, {"loss": [(0, 1.0)]}), said.append
    )
    assert recorded is None
    assert said == [
        "tracking is off: mlflow is not installed (pip install 'flywheel-mlops[tracking]')"
    ]


def test_a_task_without_a_tracking_uri_says_in_one_line_that_tracking_is_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("FLYWHEEL_TRACKING", raising=False)
    said: list[str] = []
    record = TrainingRecord("w", "w-123", "local", {}, {}, {"loss": [(0, 1.0)]})
    assert track_training(record, said.append) is None
    assert said == ["tracking is off: MLFLOW_TRACKING_URI is not set"]


def test_flywheel_tracking_off_records_nothing_and_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("FLYWHEEL_TRACKING", "off")
    said: list[str] = []
    record = TrainingRecord("w", "w-123", "local", {}, {}, {"loss": [(0, 1.0)]})
    assert track_training(record, said.append) is None
    assert said == ["tracking is off: FLYWHEEL_TRACKING=off"]


def test_the_command_prints_the_extra_to_install_when_mlflow_is_missing(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flywheel.pipelines import tracking_setup
    from flywheel.pipelines.cli import EXIT_BAD_INPUT, main

    monkeypatch.delenv("FLYWHEEL_TRACKING", raising=False)
    monkeypatch.setattr(tracking_setup, "tracking_installed", lambda: False)
    # Bad input ends the command right after the line; the line must come through whole.
    assert (
        main(["--home", str(tmp_path), "run", "training", "--hp", "n_bits=100"]) == EXIT_BAD_INPUT
    )
    assert (
        "tracking is off: mlflow is not installed (pip install 'flywheel-mlops[tracking]')"
        in capsys.readouterr().out
    )
