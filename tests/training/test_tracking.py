"""Each training is recorded in a real MLflow tracking server (started once for the session on
127.0.0.1): its parameters, digests, every metric's series with its steps, tags and links, on
the local and the EKS GPU backends; and tracking never fails a training."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .test_output_data import LOGS_A_LEARNING_CURVE, WRITES_ONLY_THE_MODEL, run_component

_PROXY = Path(__file__).resolve().parents[1] / "operators" / "fault_proxy.py"


@pytest.fixture
def tracking(mlflow_server: str | None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point this process's tasks at the session's server; an MLflow client reading it."""
    if mlflow_server is None:
        pytest.skip("mlflow is not installed (the dev extra installs it)")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.delenv("FLYWHEEL_TRACKING", raising=False)
    return MlflowClient(mlflow_server)


@pytest.mark.parametrize("compute", ["local", "eks-gpu"])
def test_a_training_is_recorded_with_its_series_parameters_digests_and_links(
    compute: str,
    tracking: Any,
    make_workload: Callable[[str], Path],
    toy_table: Path,
    tmp_path: Path,
) -> None:
    outputs = run_component(make_workload(LOGS_A_LEARNING_CURVE), toy_table, tmp_path, compute)
    run = tracking.get_run(outputs.model.metadata["tracking_run_id"])
    history = tracking.get_metric_history(run.info.run_id, "loss")
    assert [(point.step, point.value) for point in history] == [
        (1, 0.9),
        (2, 0.5),
        (3, 0.25),
        (4, 0.2),
    ]
    assert run.data.metrics == {"loss": 0.2}
    assert tracking.get_experiment(run.info.experiment_id).name == "toy-model"
    assert run.info.run_name == outputs.model.metadata["job_name"]
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert (params["epochs"], params["rate"], params["verbose"]) == ("2", "0.5", "False")
    assert params["flywheel.compute"] == compute
    assert params["flywheel.code_sha256"] == outputs.model.metadata["code_sha256"]
    assert params["flywheel.code_fingerprint"] == "test"
    tags = run.data.tags
    assert tags["flywheel.job_name"] == outputs.model.metadata["job_name"]
    assert tags["flywheel.objective"] == "rmse"
    assert tags["flywheel.link.model"] == outputs.model.uri
    assert tags["flywheel.link.learning_curves"] == outputs.learning_curves.uri
    assert outputs.model.metadata["tracking_uri"] == tracking.tracking_uri


def test_a_task_with_no_tracking_uri_of_its_own_records_in_the_one_its_run_was_given(
    tracking: Any,
    make_workload: Callable[[str], Path],
    toy_table: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A pod on a cluster: no MLFLOW_TRACKING_URI; the run's tracking_uri parameter names the server.
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    server = tracking.tracking_uri
    outputs = run_component(
        make_workload(LOGS_A_LEARNING_CURVE), toy_table, tmp_path, tracking_uri=server
    )
    run = tracking.get_run(outputs.model.metadata["tracking_run_id"])
    assert run.info.run_name == outputs.model.metadata["job_name"]
    assert outputs.model.metadata["tracking_uri"] == server


def test_a_metric_definition_that_never_matches_is_named_after_the_run(
    tracking: Any,
    make_workload: Callable[[str], Path],
    toy_table: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    outputs = run_component(make_workload(WRITES_ONLY_THE_MODEL), toy_table, tmp_path)
    job = outputs.model.metadata["job_name"]
    assert f"{job}: no log line matched metric definition(s) loss" in capsys.readouterr().out
    run = tracking.get_run(outputs.model.metadata["tracking_run_id"])
    assert run.data.tags["flywheel.unmatched_metrics"] == "loss"


def test_a_retried_task_records_its_training_once(
    tracking: Any, make_workload: Callable[[str], Path], toy_table: Path, tmp_path: Path
) -> None:
    workload = make_workload(LOGS_A_LEARNING_CURVE)
    first = run_component(workload, toy_table, tmp_path).model.metadata["tracking_run_id"]
    again = run_component(workload, toy_table, tmp_path).model.metadata["tracking_run_id"]
    assert again == first
    assert len(tracking.get_metric_history(first, "loss")) == 4


def test_a_server_that_goes_down_mid_run_does_not_fail_the_training(
    mlflow_server: str | None,
    make_workload: Callable[[str], Path],
    toy_table: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if mlflow_server is None:
        pytest.skip("mlflow is not installed (the dev extra installs it)")
    spec = importlib.util.spec_from_file_location("fault_proxy", _PROXY)
    fault_proxy = sys.modules.setdefault("fault_proxy", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(fault_proxy)
    with fault_proxy.FaultProxy(mlflow_server) as proxy:
        # The experiment is found, then the server answers 503 to everything after: retried, then
        # given up on.
        proxy.inject("POST", r"/runs/create$", times=100, status=503)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
        monkeypatch.delenv("FLYWHEEL_TRACKING", raising=False)
        outputs = run_component(make_workload(LOGS_A_LEARNING_CURVE), toy_table, tmp_path)
    assert Path(outputs.model.path).is_file()
    assert outputs.metrics.metadata == {"loss": 0.2}
    assert outputs.model.metadata["tracking_run_id"] == ""
    said = [line for line in capsys.readouterr().out.splitlines() if "tracking" in line]
    job = outputs.model.metadata["job_name"]
    assert said == [f"tracking: {job} not recorded at {proxy.url}: {said[0].split(': ', 2)[2]}"]
    assert "503" in said[0] or "unreachable" in said[0]
