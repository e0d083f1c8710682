"""SageMaker Automatic Model Tuning: the request is the training job Flywheel already builds, under
a name that fits 32 characters; the launcher runs it once and returns the best trial's model."""

from __future__ import annotations

import pytest
import yaml

from flywheel.components.compute.sagemaker import Watch
from flywheel.components.compute.sagemaker.jobs import TUNING
from flywheel.components.compute.sagemaker.logs import LogTailer
from flywheel.components.compute.sagemaker.s3 import S3Uri
from flywheel.components.compute.sagemaker.training import training_request
from flywheel.components.compute.sagemaker.tuning import (
    run_tuning,
    tuning_job_name,
    tuning_request,
)
from flywheel.components.contract.tuning import tuning_of
from flywheel.components.contract.workload import load_workload
from flywheel.components.errors import InvalidSpecError, JobFailedError

from .conftest import NOW, REGION, base_config

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
SECTION = """
objective: {metric: test_rmse, type: Minimize}
strategy: Bayesian
ranges:
  n_estimators: {type: integer, min: 50, max: 800, scaling: Logarithmic}
  min_samples_leaf: {type: integer, min: 1, max: 8}
  max_features: {type: categorical, values: [sqrt, log2]}
max_jobs: 8
max_parallel_jobs: 2
random_seed: 3
"""


def spec_of(section: str = SECTION):
    workload = load_workload("builtin:qsar")
    return tuning_of(
        {"tuning": yaml.safe_load(section)},
        workload.hyperparameters,
        [m.name for m in workload.metric_definitions],
    )


def training(**config: object) -> dict:
    workload = load_workload("builtin:qsar")
    job = workload.training_job(
        job_name="qsar",
        channels={"train": "s3://flywheel-test/data/train"},
        hyperparameters=workload.resolve_hyperparameters({}),
        output_location="s3://flywheel-test/out",
    )
    return training_request(
        job,
        base_config(**config),
        image=IMAGE,
        code=S3Uri("flywheel-test", "code/0123456789abcdef/sourcedir.tar.gz"),
        channels={"train": S3Uri("flywheel-test", "data/train")},
        region=REGION,
    )


def test_each_trial_is_the_training_job_with_the_searched_hyperparameters_left_to_the_tuner():
    train = training(
        subnets=["subnet-0abc1234"],
        security_group_ids=["sg-0abc1234"],
        spot=True,
        checkpoint_s3_uri="s3://flywheel-test/checkpoints",
        max_wait_seconds=100000,
    )
    request = tuning_request(spec_of(), train, run_id="run-1")
    definition = request["TrainingJobDefinition"]
    config = request["HyperParameterTuningJobConfig"]

    assert (
        definition["AlgorithmSpecification"]["MetricDefinitions"]
        == (train["AlgorithmSpecification"]["MetricDefinitions"])
    )
    assert definition["VpcConfig"] == train["VpcConfig"]
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["CheckpointConfig"] == train["CheckpointConfig"]
    assert definition["InputDataConfig"] == train["InputDataConfig"]
    static = definition["StaticHyperParameters"]
    assert not {"n_estimators", "min_samples_leaf", "max_features"} & set(static)
    assert static["radius"] == train["HyperParameters"]["radius"]
    assert static["sagemaker_program"] == '"train.py"'
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Minimize",
        "MetricName": "test_rmse",
    }
    assert config["ResourceLimits"] == {"MaxParallelTrainingJobs": 2, "MaxNumberOfTrainingJobs": 8}
    assert config["RandomSeed"] == 3
    ranges = config["ParameterRanges"]
    assert ranges["IntegerParameterRanges"][0] == {
        "Name": "n_estimators",
        "MinValue": "50",
        "MaxValue": "800",
        "ScalingType": "Logarithmic",
    }
    # JSON, as the static values are: the toolkit decodes "\"sqrt\"" to the string sqrt.
    assert ranges["CategoricalParameterRanges"] == [
        {"Name": "max_features", "Values": ['"sqrt"', '"log2"']}
    ]


def test_tuning_job_names_keep_room_for_the_last_attempt_within_32_characters():
    train = training()
    long_run = "a-very-long-pipeline-run-identifier-0123456789-abcdef"
    name = tuning_request(spec_of(), train, run_id=long_run)["HyperParameterTuningJobName"]

    assert len(f"{name}-a99") <= 32
    assert name.startswith("tune-a-very-long")
    assert tuning_request(spec_of(), train, run_id=long_run)["HyperParameterTuningJobName"] == name
    wider = SECTION.replace("max: 800", "max: 900")
    assert (
        tuning_request(spec_of(wider), train, run_id=long_run)["HyperParameterTuningJobName"]
        != name
    ), "a changed search is a job of its own"
    assert len(tuning_job_name("", {})) <= 28


def test_grid_leaves_the_count_to_sagemaker_and_hyperband_names_its_epochs():
    grid = SECTION.replace("strategy: Bayesian", "strategy: Grid").replace("max_jobs: 8\n", "")
    grid = "\n".join(line for line in grid.splitlines() if "type: integer" not in line)
    config = tuning_request(spec_of(grid), training(), run_id="r")["HyperParameterTuningJobConfig"]
    assert config["ResourceLimits"] == {"MaxParallelTrainingJobs": 2}

    band = SECTION.replace("strategy: Bayesian", "strategy: Hyperband") + (
        "hyperband: {min_resource: 2, max_resource: 40}\n"
    )
    config = tuning_request(spec_of(band), training(), run_id="r")["HyperParameterTuningJobConfig"]
    assert config["StrategyConfig"] == {
        "HyperbandStrategyConfig": {"MinResource": 2, "MaxResource": 40}
    }
    assert config["TrainingJobEarlyStoppingType"] == "Off"


def test_a_warm_start_names_its_parent_tuning_jobs():
    section = SECTION + "warm_start: {parents: [tune-run-0-0123456789], type: TransferLearning}\n"
    request = tuning_request(spec_of(section), training(), run_id="r")

    assert request["WarmStartConfig"] == {
        "ParentHyperParameterTuningJobs": [
            {"HyperParameterTuningJobName": "tune-run-0-0123456789"}
        ],
        "WarmStartType": "TransferLearning",
    }


# -- the launcher, against botocore's Stubber ---------------------------------------------------

REQUEST = tuning_request(spec_of(), training(), run_id="run-1")
NAME = REQUEST["HyperParameterTuningJobName"]
ARN = f"arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/{NAME}"
BEST = f"{NAME}-003-0a1b2c3d"


def tuning_description(status: str, name: str = NAME, **extra: object) -> dict:
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobArn": ARN.replace(NAME, name),
        "HyperParameterTuningJobConfig": REQUEST["HyperParameterTuningJobConfig"],
        "HyperParameterTuningJobStatus": status,
        "CreationTime": NOW,
        "TrainingJobStatusCounters": {},
        "ObjectiveStatusCounters": {},
        **extra,
    }


def summary(name: str, rmse: float | None, n_estimators: int) -> dict:
    body = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "CreationTime": NOW,
        "TrainingJobStatus": "Completed" if rmse is not None else "Failed",
        "TunedHyperParameters": {
            "n_estimators": str(n_estimators),
            "min_samples_leaf": "2",
            "max_features": '"log2"',
        },
    }
    if rmse is not None:
        body["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "Type": "Minimize",
            "MetricName": "test_rmse",
            "Value": rmse,
        }
    return body


def listed(stubbed, *jobs: tuple[str, str]) -> None:
    stubbed.sagemaker.add_response(
        "list_hyper_parameter_tuning_jobs",
        {
            "HyperParameterTuningJobSummaries": [
                {
                    "HyperParameterTuningJobName": name,
                    "HyperParameterTuningJobArn": ARN.replace(NAME, name),
                    "HyperParameterTuningJobStatus": status,
                    "Strategy": "Bayesian",
                    "CreationTime": NOW,
                    "TrainingJobStatusCounters": {},
                    "ObjectiveStatusCounters": {},
                }
                for name, status in jobs
            ]
        },
        {"NameContains": NAME, "MaxResults": 100},
    )


def describe(stubbed, body: dict) -> None:
    stubbed.sagemaker.add_response(
        "describe_hyper_parameter_tuning_job",
        body,
        {"HyperParameterTuningJobName": body["HyperParameterTuningJobName"]},
    )


def not_found(stubbed, name: str) -> None:
    stubbed.sagemaker.add_client_error(
        "describe_hyper_parameter_tuning_job",
        service_error_code="ValidationException",
        service_message="Requested resource not found.",
        expected_params={"HyperParameterTuningJobName": name},
    )


def no_streams(stubbed, times: int = 1) -> None:
    for _ in range(times):
        stubbed.logs.add_client_error(
            "describe_log_streams",
            service_error_code="ResourceNotFoundException",
            service_message="The specified log group does not exist.",
        )


def completed(stubbed, name: str = NAME) -> None:
    """The job ends Completed; the best trial is described, then every trial listed (two pages)."""
    best = summary(BEST, 0.61, 412)
    describe(stubbed, tuning_description("Completed", name, BestTrainingJob=best))
    no_streams(stubbed, 2)
    stubbed.sagemaker.add_response(
        "describe_training_job",
        {
            "TrainingJobName": BEST,
            "TrainingJobArn": best["TrainingJobArn"],
            "TrainingJobStatus": "Completed",
            "SecondaryStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": f"s3://flywheel-test/out/{BEST}/model.tar.gz"},
            "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            "ResourceConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 30,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            "CreationTime": NOW,
        },
        {"TrainingJobName": BEST},
    )
    query = {
        "HyperParameterTuningJobName": name,
        "MaxResults": 100,
        "SortBy": "FinalObjectiveMetricValue",
        "SortOrder": "Ascending",
    }
    stubbed.sagemaker.add_response(
        "list_training_jobs_for_hyper_parameter_tuning_job",
        {
            "TrainingJobSummaries": [summary(f"{name}-001-aaaaaaaa", 0.72, 60), best],
            "NextToken": "p2",
        },
        query,
    )
    stubbed.sagemaker.add_response(
        "list_training_jobs_for_hyper_parameter_tuning_job",
        {"TrainingJobSummaries": [summary(f"{name}-002-bbbbbbbb", None, 700)]},
        {**query, "NextToken": "p2"},
    )


def test_a_tuning_job_is_created_followed_and_its_best_trial_model_returned(stubbed, clock):
    lines: list[str] = []
    handles: list[str] = []
    listed(stubbed)
    not_found(stubbed, NAME)
    stubbed.sagemaker.add_response(
        "create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": ARN}, REQUEST
    )
    describe(stubbed, tuning_description("InProgress"))
    no_streams(stubbed)
    completed(stubbed)

    result = run_tuning(
        stubbed.clients,
        REQUEST,
        log=lines.append,
        watch=Watch(clock=clock),
        on_handle=handles.append,
    )

    stubbed.verify()
    assert handles == [ARN]
    assert result.best_training_job == BEST
    assert result.best_parameters == {
        "n_estimators": 412,
        "min_samples_leaf": 2,
        "max_features": "log2",
    }
    assert (result.objective_metric, result.objective_value) == ("test_rmse", 0.61)
    assert result.model_uri == f"s3://flywheel-test/out/{BEST}/model.tar.gz"
    assert [t.objective for t in result.trials] == [0.61, 0.72, None], "best first, failed last"
    assert any("hyper-tuning-jobs" in line and NAME in line for line in lines)
    assert f"best trial {BEST}: test_rmse=0.61" in lines[-1]


def test_a_retry_reattaches_to_the_running_tuning_job_and_creates_none(stubbed, clock):
    lines: list[str] = []
    listed(stubbed, (NAME, "InProgress"))
    describe(stubbed, tuning_description("InProgress"))
    no_streams(stubbed)
    completed(stubbed)

    result = run_tuning(stubbed.clients, REQUEST, log=lines.append, watch=Watch(clock=clock))

    stubbed.verify()  # a create_hyper_parameter_tuning_job would have found no stubbed answer
    assert result.best_training_job == BEST
    assert any(
        "hyperparametertuning job exists (InProgress): reattaching" in line for line in lines
    )


def test_after_a_failed_tuning_job_a_retry_creates_the_next_attempt(stubbed, clock):
    second = f"{NAME}-a2"
    listed(stubbed, (NAME, "Failed"))
    describe(stubbed, tuning_description("Failed", FailureReason="No training job succeeded"))
    not_found(stubbed, second)
    stubbed.sagemaker.add_response(
        "create_hyper_parameter_tuning_job",
        {"HyperParameterTuningJobArn": ARN.replace(NAME, second)},
        {**REQUEST, "HyperParameterTuningJobName": second},
    )
    completed(stubbed, second)

    result = run_tuning(stubbed.clients, REQUEST, log=lambda _: None, watch=Watch(clock=clock))

    stubbed.verify()
    assert result.tuning_job_name == second
    assert len(second) <= 32


def test_a_tuning_job_that_completes_with_no_best_trial_fails_the_step(stubbed, clock):
    listed(stubbed, (NAME, "Completed"))
    describe(stubbed, tuning_description("Completed"))
    describe(stubbed, tuning_description("Completed"))
    no_streams(stubbed, 2)

    with pytest.raises(JobFailedError, match="no trial reported the objective metric"):
        run_tuning(stubbed.clients, REQUEST, log=lambda _: None, watch=Watch(clock=clock))


def test_the_objective_must_be_one_the_trials_metric_definitions_read():
    train = training()
    train["AlgorithmSpecification"]["MetricDefinitions"] = []

    with pytest.raises(InvalidSpecError) as refused:
        tuning_request(spec_of(), train, run_id="r")

    assert refused.value.field == "tuning.objective.metric"


def test_each_trials_log_is_followed_labelled_with_its_trial(stubbed):
    lines: list[str] = []
    prefix = TUNING.log_stream_prefix(NAME)
    trials = [f"{NAME}-001-aaaaaaaa/algo-1-1700000000", f"{NAME}-002-bbbbbbbb/algo-1-1700000000"]
    stubbed.logs.add_response(
        "describe_log_streams",
        {"logStreams": [{"logStreamName": stream} for stream in trials]},
        {"logGroupName": "/aws/sagemaker/TrainingJobs", "logStreamNamePrefix": f"{NAME}-"},
    )
    for number, stream in enumerate(trials, start=1):
        stubbed.logs.add_response(
            "get_log_events",
            {"events": [{"message": f"test_rmse=0.{number}"}], "nextForwardToken": "f1"},
            {"logGroupName": TUNING.log_group, "logStreamName": stream, "startFromHead": True},
        )
        stubbed.logs.add_response(
            "get_log_events",
            {"events": [], "nextForwardToken": "f1"},
            {
                "logGroupName": TUNING.log_group,
                "logStreamName": stream,
                "startFromHead": True,
                "nextToken": "f1",
            },
        )

    LogTailer(stubbed.clients.logs, TUNING.log_group, prefix, lines.append).poll()

    assert lines == [
        "[001-aaaaaaaa/algo-1-1700000000] test_rmse=0.1",
        "[002-bbbbbbbb/algo-1-1700000000] test_rmse=0.2",
    ]
    stubbed.verify()
