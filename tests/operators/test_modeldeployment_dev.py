"""The README's serving walkthrough on ``python -m flywheel.operators --dev``: what it needs is
there (registered versions waiting for approval, the soak alarm OK, the deploy pipeline in the
KFP stand-in), and the stand-in's deploy task serves the sample's staging stage on moto.
The rollout itself (approval, staging, prod) is test_modeldeployment.py's."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import yaml
from moto.moto_api._internal.models import moto_api_backend

from flywheel.operators.__main__ import _dev_help, _dev_world
from flywheel.operators.deployment_handlers import run_parameters
from flywheel.operators.deployment_spec import parse_deployment
from flywheel.operators.dev_serving import (
    MODEL,
    REGION,
    SOAK_ALARMS,
    registry_uri,
    run_deploy_task,
)
from flywheel.operators.serving_reads import alarms_ok, served, target
from flywheel.pipelines import cli

SAMPLE = Path(__file__).resolve().parents[2] / "manifests/deployments/modeldeployment-sample.yaml"


@pytest.fixture
def fresh_moto() -> Iterator[None]:
    """moto keeps its state per process, not per server: the dev world starts from nothing and
    leaves nothing to the next test."""
    moto_api_backend.reset()
    yield
    moto_api_backend.reset()


@pytest.mark.usefixtures("fresh_moto")
def test_the_dev_world_serves_the_walkthrough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = parse_deployment(yaml.safe_load(SAMPLE.read_text())["spec"])
    staging = deployment.stages[0]
    with _dev_world(tmp_path) as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        assert target(sagemaker, MODEL, staging)["reason"] == "NoApprovedVersion"
        # A pinned version the registry lacks is refused in one line naming the field.
        missing = dataclasses.replace(deployment.stages[1], version=9)
        assert target(sagemaker, MODEL, missing, "spec.stages[1]") == {
            "ok": False,
            "reason": "VersionNotFound",
            "version": 9,
            "message": "spec.stages[1].version: churn-model has no version 9 (versions: 1, 2)",
        }
        pending = target(sagemaker, MODEL, deployment.stages[1], "spec.stages[1]")
        assert pending["reason"] == "NotApproved"
        assert alarms_ok(cloudwatch, list(SOAK_ALARMS)) == {
            "ok": True,
            "message": "all soak alarms OK",
        }
        assert alarms_ok(cloudwatch, [*SOAK_ALARMS, "no-such-alarm"]) == {
            "ok": False,
            "message": "alarms not found: no-such-alarm",
        }
        cloudwatch.set_alarm_state(AlarmName=SOAK_ALARMS[0], StateValue="ALARM", StateReason="5xx")
        assert alarms_ok(cloudwatch, list(SOAK_ALARMS))["ok"] is False
        # The walkthrough's approval: `flywheel approve` on the dev registry the help prints.
        registry = registry_uri(env["AWS_ENDPOINT_URL"])
        assert registry in _dev_help(env)
        approve = ["approve", MODEL, "1", "--note", "canary looked fine", "--registry", registry]
        assert cli.main(approve) == 0
        arn = f"arn:aws:sagemaker:{REGION}:123456789012:model-package/{MODEL}/1"
        found = target(sagemaker, MODEL, staging)
        assert (found["version"], found["arn"]) == (1, arn)
        parameters = run_parameters(deployment, "staging", arn)
        assert run_deploy_task("churn-model-staging-x", parameters) == "SUCCEEDED"
        assert served(sagemaker, staging.endpoint_name)["servedVersion"] == 1
        assert run_deploy_task("churn-model-x", {"pipeline": "training"}) is None
