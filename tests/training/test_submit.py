"""``flywheel submit`` against a KFP API stand-in on 127.0.0.1 (the v2beta1 endpoints)."""

from __future__ import annotations

import socket

import pytest

from flywheel.operators.kfp_standin import KfpStandIn
from flywheel.pipelines import kubernetes_manifests
from flywheel.pipelines.catalog import PIPELINES
from flywheel.pipelines.cli import main


@pytest.fixture
def kfp_api():
    with KfpStandIn() as api:
        yield api


def test_submit_starts_one_run_with_typed_parameters_and_the_inline_spec(kfp_api, capsys) -> None:
    status = main(
        [
            "submit",
            "training",
            "--host",
            kfp_api.url,
            "--run-name",
            "nightly",
            "--service-account",
            "flywheel-training",
            "--param",
            "batch_count=6",
            "--param",
            "margin=0.05",
            "--param",
            'hyperparameters={"n_estimators": 400}',
        ]
    )
    assert status == 0, capsys.readouterr().err
    (run,) = kfp_api.runs_named("nightly")
    assert run["service_account"] == "flywheel-training"
    assert run["runtime_config"]["parameters"] == {
        "batch_count": 6,
        "margin": 0.05,
        "hyperparameters": {"n_estimators": 400},
    }
    assert run["pipeline_spec"]["pipelineInfo"]["name"] == "flywheel-training"
    assert f"started run {run['run_id']} of this checkout's spec, sent inline" in (
        capsys.readouterr().out
    )


def test_submit_runs_the_registered_version_this_checkout_compiles_to(kfp_api, capsys) -> None:
    _, current = kubernetes_manifests.current_documents(PIPELINES["training"])
    name, spec = current["metadata"]["name"], current["spec"]["pipelineSpec"]
    # Another version created after ours: KFP's "latest", but not this checkout's code.
    kfp_api.sync_pipeline(
        "flywheel-training", [(name, spec), ("flywheel-training-zzzzzzzzzz", {"other": True})]
    )
    status = main(["submit", "training", "--host", kfp_api.url, "--run-name", "pinned"])
    assert status == 0, capsys.readouterr().err
    (run,) = kfp_api.runs_named("pinned")
    assert run["pipeline_spec"] is None
    assert kfp_api.version_spec(run["pipeline_version_reference"]["pipeline_version_id"]) == spec
    assert f"of version {name}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["training", "--param", "batches=6"],
            "--param batches: not a parameter of the pipeline; allowed:",
        ),
        (
            ["training", "--param", "batch_count=six"],
            "--param batch_count: expected number integer, got 'six'",
        ),
        (
            ["training", "--param", "hyperparameters=[1]"],
            "--param hyperparameters: expected struct",
        ),
        (["nightly"], "pipeline: 'nightly' is not one of training"),
    ],
)
def test_bad_submission_is_refused_before_any_request(kfp_api, capsys, arguments, message) -> None:
    status = main(["submit", "--host", kfp_api.url, *arguments])
    error = capsys.readouterr().err.strip()
    assert status == 2 and message in error and len(error.splitlines()) == 1
    assert kfp_api.create_calls == 0


def test_submit_hands_this_shells_tracking_server_to_the_runs_train_tasks(
    kfp_api, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    monkeypatch.delenv("FLYWHEEL_TRACKING", raising=False)
    status = main(["submit", "tuning", "--host", kfp_api.url, "--run-name", "tracked"])
    assert status == 0, capsys.readouterr().err
    (run,) = kfp_api.runs_named("tracked")
    assert run["runtime_config"]["parameters"]["tracking_uri"] == "http://mlflow.example:5000"


@pytest.mark.parametrize(
    ("environment", "arguments", "message"),
    [
        (
            "sqlite:///home/me/.flywheel/mlflow.db",
            [],
            "MLFLOW_TRACKING_URI: sqlite:///home/me/.flywheel/mlflow.db is a store on this "
            "machine, which a task pod cannot reach",
        ),
        (
            "",
            ["--param", "tracking_uri=localhost:5000"],
            "--param tracking_uri: 'localhost:5000' is not a tracking URI",
        ),
    ],
)
def test_a_tracking_store_a_pod_cannot_use_is_refused_before_any_request(
    kfp_api, capsys, monkeypatch, environment, arguments, message
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", environment)
    monkeypatch.delenv("FLYWHEEL_TRACKING", raising=False)
    status = main(["submit", "training", "--host", kfp_api.url, *arguments])
    error = capsys.readouterr().err.strip()
    assert status == 2 and message in error and len(error.splitlines()) == 1
    assert kfp_api.create_calls == 0


def test_an_unreachable_host_is_one_line_naming_it(capsys) -> None:
    with socket.socket() as probe:  # a port that was just free: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    status = main(["submit", "training", "--host", f"http://127.0.0.1:{port}"])
    error = capsys.readouterr().err.strip()
    assert status == 1
    assert error.splitlines() == [
        f"flywheel: failed: cannot reach the KFP API at 127.0.0.1:{port}: Connection refused "
        f"(--host http://127.0.0.1:{port})"
    ]
