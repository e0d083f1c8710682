"""The tuning pipeline with compute set to SageMaker, end to end through kfp.local, against moto.

moto accepts CreateHyperParameterTuningJob and calls it Completed at once, but runs no trial,
names a made-up best job and has no ListTrainingJobsForHyperParameterTuningJob. So each tuning
job here leaves what SageMaker would: one Completed trial (the request's training job definition
with the first value of each range) whose model.tar.gz is in S3, named as the best training job.
Then the pipeline evaluates it by batch transform, registers it and gates it, all on moto.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from moto.core.responses import ActionResult
from moto.sagemaker.responses import SageMakerResponse

from flywheel.components.registry import LocalModelRegistry
from flywheel.pipelines.training_run import TrainingRequest
from flywheel.pipelines.tuning_run import run_tuning

from .moto_sagemaker import moto_account
from .test_pipeline_on_moto import BUCKET, moto_config, write_source

OBJECTIVE_VALUE = 0.42


def _first_values(config: dict) -> dict[str, str]:
    return {
        r["Name"]: r["Values"][0] if "Values" in r else r["MinValue"]
        for kind in config.get("ParameterRanges", {}).values()
        for r in kind
    }


def _with_one_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make each tuning job leave one Completed trial, its best, as SageMaker would."""
    original = SageMakerResponse.create_hyper_parameter_tuning_job
    trials: dict[str, dict] = {}

    def create(self):
        request = json.loads(self.body)
        response = original(self)
        name = request["HyperParameterTuningJobName"]
        definition, config = (
            request["TrainingJobDefinition"],
            request["HyperParameterTuningJobConfig"],
        )
        tuned = _first_values(config)
        trial = f"{name}-001-0a1b2c3d"
        backend = self.sagemaker_backend
        backend.create_training_job(  # moto's worker writes its model.tar.gz
            training_job_name=trial,
            hyper_parameters={**definition["StaticHyperParameters"], **tuned},
            algorithm_specification=definition["AlgorithmSpecification"],
            role_arn=definition["RoleArn"],
            input_data_config=definition.get("InputDataConfig", []),
            output_data_config=definition["OutputDataConfig"],
            resource_config=definition["ResourceConfig"],
            vpc_config=None,
            stopping_condition=definition["StoppingCondition"],
            tags=[],
            enable_network_isolation=False,
            enable_inter_container_traffic_encryption=False,
            enable_managed_spot_training=False,
            checkpoint_config=None,
            debug_hook_config=None,
            debug_rule_configurations=None,
            tensor_board_output_config=None,
            experiment_config=None,
        )
        summary = {
            "TrainingJobName": trial,
            "TrainingJobArn": backend.training_jobs[trial].arn,
            "CreationTime": datetime.now(UTC),
            "TrainingJobStatus": "Completed",
            "TunedHyperParameters": tuned,
            "FinalHyperParameterTuningJobObjectiveMetric": {
                **config["HyperParameterTuningJobObjective"],
                "Value": OBJECTIVE_VALUE,
            },
            "ObjectiveStatus": "Succeeded",
        }
        backend.hyper_parameter_tuning_jobs[name].best_training_job = summary
        trials[name] = summary
        return response

    def list_trials(self):
        name = self._get_param("HyperParameterTuningJobName")
        return ActionResult({"TrainingJobSummaries": [trials[name]] if name in trials else []})

    monkeypatch.setattr(SageMakerResponse, "create_hyper_parameter_tuning_job", create)
    monkeypatch.setattr(
        SageMakerResponse,
        "list_training_jobs_for_hyper_parameter_tuning_job",
        list_trials,
        raising=False,
    )


@pytest.fixture
def aws(monkeypatch):
    _with_one_trial(monkeypatch)
    with moto_account(monkeypatch, BUCKET) as endpoint_url:
        yield endpoint_url


@pytest.mark.e2e
def test_tuning_pipeline_tunes_evaluates_registers_and_gates_on_sagemaker(aws, tmp_path: Path):
    request = TrainingRequest(
        workload="builtin:qsar-tuning",
        source=str(write_source(tmp_path / "compounds.csv")),
        compute="sagemaker",
        compute_config=moto_config(aws, "flywheel"),
        registry=str(tmp_path / "registry"),
        pipeline_root=str(tmp_path / "runs"),
        cache=False,
    )

    outcome = run_tuning(request)

    sagemaker = boto3.client("sagemaker", endpoint_url=aws)
    (tuning_job,) = sagemaker.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]
    name = tuning_job["HyperParameterTuningJobName"]
    assert len(name) <= 32
    assert "tune-on-sagemaker" in outcome.run.tasks.succeeded
    assert not any(task.startswith("train-model") for task in outcome.run.tasks.started)
    assert [t["best"] for t in outcome.trials] == [True]
    assert outcome.trials[0]["objective"] == OBJECTIVE_VALUE
    version = LocalModelRegistry(tmp_path / "registry").get("qsar-pic50", outcome.version.version)
    tuning = version.lineage["tuning"]
    assert tuning["engine"] == "sagemaker" and tuning["run"] == name
    assert tuning["trial"] == f"{name}-001-0a1b2c3d"
    assert tuning["parameters"] == {
        "n_estimators": 20,
        "min_samples_leaf": 1,
        "max_features": "sqrt",
    }
    assert version.metrics["rmse"] > 0  # evaluated by batch transform on moto
    assert version.stage == "champion" and outcome.promoted  # the gate, against no champion
