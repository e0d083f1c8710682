"""SageMaker Automatic Model Tuning for a workload's ``tuning`` section, run exactly once.

The tuning job's trials are the training job Flywheel already builds (``training.py``), so the
request is that ``CreateTrainingJob`` request turned into a ``TrainingJobDefinition``: the same
image, metric regexes, channels, instances, spot and VPC settings, with the searched
hyperparameters taken out of the static ones. The job is then run by the same launcher as every
other kind (``remote_runner.run_job``): a deterministic name, reattach to a running or Completed
job, a new ``-aN`` attempt after Failed or Stopped, and a stop on SIGTERM.

Tuning job names are at most 32 characters, against 63 for the other kinds, so the name is
built here, short enough that the last attempt's suffix (``-a99``) still fits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flywheel.components.compute.backend import LogSink
from flywheel.components.compute.sagemaker import naming
from flywheel.components.compute.sagemaker.clients import AwsClients
from flywheel.components.compute.sagemaker.jobs import TUNING
from flywheel.components.compute.sagemaker.remote_runner import Watch, run_job
from flywheel.components.compute.sagemaker.validation import check_request
from flywheel.components.contract.tuning import (
    MAX_TUNING_JOB_NAME,
    ParameterRange,
    TuningSpec,
    decode_value,
    encode_value,
)
from flywheel.components.errors import InvalidSpecError, JobFailedError

# Room for the digest, and for the attempt suffix every retry may add.
_ATTEMPT_ROOM = len(f"-a{naming.MAX_ATTEMPTS}")
MAX_BASE_NAME = MAX_TUNING_JOB_NAME - _ATTEMPT_ROOM
# What a TrainingJobDefinition takes from a CreateTrainingJob request as it is.
_CARRIED = (
    "RoleArn",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "EnableNetworkIsolation",
    "EnableManagedSpotTraining",
    "CheckpointConfig",
    "VpcConfig",
    "Environment",
)
_RANGE_KEYS = {
    "integer": "IntegerParameterRanges",
    "continuous": "ContinuousParameterRanges",
    "categorical": "CategoricalParameterRanges",
}
TRIALS_PAGE = 100


def tuning_job_name(run_id: str, request: Mapping[str, Any]) -> str:
    """``tune-<run>-<digest>`` within 28 characters, so ``-a99`` keeps it within SageMaker's 32.

    The digest covers the run and the whole request, as ``naming.resource_name`` does for jobs:
    a retry of the same search finds its job, and a changed search gets a job of its own.
    """
    digest = naming.spec_digest({"run": run_id, "task": "tune", "spec": request})
    slug = re.sub(r"-+", "-", re.sub(r"[^a-zA-Z0-9]", "-", run_id)).strip("-").lower()
    room = MAX_BASE_NAME - len(digest) - len("tune--")
    readable = "-".join(part for part in ("tune", slug[:room].rstrip("-")) if part)
    return f"{readable}-{digest}"


def _number(value: float, kind: str) -> str:
    return str(int(value)) if kind == "integer" else repr(float(value))


def _range(parameter: ParameterRange) -> dict[str, Any]:
    if parameter.type == "categorical":
        # JSON-encoded as the static hyperparameters are, so the script reads the same types.
        return {"Name": parameter.name, "Values": [encode_value(v) for v in parameter.values]}
    return {
        "Name": parameter.name,
        "MinValue": _number(parameter.min, parameter.type),
        "MaxValue": _number(parameter.max, parameter.type),
        "ScalingType": parameter.scaling,
    }


def parameter_ranges(spec: TuningSpec) -> dict[str, list[dict[str, Any]]]:
    """SageMaker's ``ParameterRanges``: each range under the list of its kind."""
    ranges: dict[str, list[dict[str, Any]]] = {}
    for parameter in spec.ranges:
        ranges.setdefault(_RANGE_KEYS[parameter.type], []).append(_range(parameter))
    return ranges


def _job_config(spec: TuningSpec) -> dict[str, Any]:
    limits: dict[str, int] = {"MaxParallelTrainingJobs": spec.max_parallel_jobs}
    if spec.strategy != "Grid":
        # Grid counts its combinations itself (the spec checked max_jobs against them).
        limits["MaxNumberOfTrainingJobs"] = spec.max_jobs
    config: dict[str, Any] = {
        "Strategy": spec.strategy,
        "HyperParameterTuningJobObjective": {
            "Type": spec.objective_type,
            "MetricName": spec.objective_metric,
        },
        "ResourceLimits": limits,
        "ParameterRanges": parameter_ranges(spec),
        "TrainingJobEarlyStoppingType": spec.early_stopping,
    }
    if spec.random_seed is not None:
        config["RandomSeed"] = spec.random_seed
    if spec.strategy == "Hyperband" and spec.max_resource is not None:
        config["StrategyConfig"] = {
            "HyperbandStrategyConfig": {
                "MinResource": spec.min_resource or 1,
                "MaxResource": spec.max_resource,
            }
        }
    return config


def training_job_definition(spec: TuningSpec, training: Mapping[str, Any]) -> dict[str, Any]:
    """The ``TrainingJobDefinition`` of every trial: ``training`` (a CreateTrainingJob request)
    with the searched hyperparameters left to the tuner."""
    algorithm = training["AlgorithmSpecification"]
    static = {k: v for k, v in training.get("HyperParameters", {}).items() if k not in spec.tuned}
    definition: dict[str, Any] = {
        "AlgorithmSpecification": {
            key: algorithm[key]
            for key in ("TrainingImage", "TrainingInputMode", "MetricDefinitions")
            if key in algorithm
        },
        "StaticHyperParameters": static,
        **{key: training[key] for key in _CARRIED if key in training},
    }
    if not definition.get("InputDataConfig"):
        definition.pop("InputDataConfig", None)  # at least one channel, or none at all
    if not definition.get("Environment"):
        definition.pop("Environment", None)
    return definition


def tuning_request(spec: TuningSpec, training: Mapping[str, Any], *, run_id: str) -> dict[str, Any]:
    """The ``CreateHyperParameterTuningJob`` request, named from a digest of everything in it and
    checked as the service checks it."""
    defined = {m["Name"] for m in training["AlgorithmSpecification"].get("MetricDefinitions", [])}
    if spec.objective_metric not in defined:
        raise InvalidSpecError(
            "tuning.objective.metric",
            f"{spec.objective_metric!r} is not read by the job's MetricDefinitions {sorted(defined)}",
        )
    request: dict[str, Any] = {
        "HyperParameterTuningJobConfig": _job_config(spec),
        "TrainingJobDefinition": training_job_definition(spec, training),
    }
    if spec.warm_start is not None:
        request["WarmStartConfig"] = {
            "ParentHyperParameterTuningJobs": [
                {"HyperParameterTuningJobName": parent} for parent in spec.warm_start.parents
            ],
            "WarmStartType": spec.warm_start.type,
        }
    if training.get("Tags"):
        request["Tags"] = list(training["Tags"])
    name = tuning_job_name(run_id, request)
    named = {"HyperParameterTuningJobName": name, **request}
    return dict(check_request("sagemaker", "CreateHyperParameterTuningJob", named))


@dataclass(frozen=True)
class Trial:
    """One training job the tuner ran: its tuned values (typed) and final objective, if any."""

    name: str
    status: str
    parameters: Mapping[str, Any]
    objective: float | None


@dataclass(frozen=True)
class TuningResult:
    """The winner of a Completed tuning job, and every trial, best first."""

    tuning_job_name: str
    best_training_job: str
    best_parameters: Mapping[str, Any]
    objective_metric: str
    objective_value: float
    model_uri: str
    trials: tuple[Trial, ...]


def _trial(summary: Mapping[str, Any]) -> Trial:
    final = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    value = final.get("Value")
    return Trial(
        name=summary["TrainingJobName"],
        status=summary["TrainingJobStatus"],
        parameters={k: decode_value(v) for k, v in summary.get("TunedHyperParameters", {}).items()},
        objective=float(value) if value is not None and math.isfinite(float(value)) else None,
    )


def sorted_trials(trials: list[Trial], maximize: bool) -> tuple[Trial, ...]:
    """Best objective first; trials that reported none last, by name."""
    scored = sorted(
        (t for t in trials if t.objective is not None),
        key=lambda t: (-t.objective if maximize else t.objective, t.name),
    )
    return (*scored, *sorted((t for t in trials if t.objective is None), key=lambda t: t.name))


def list_trials(clients: AwsClients, name: str, maximize: bool) -> tuple[Trial, ...]:
    """Every trial of tuning job ``name``, best first (every page of
    ``ListTrainingJobsForHyperParameterTuningJob``)."""
    trials: list[Trial] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {
            "HyperParameterTuningJobName": name,
            "MaxResults": TRIALS_PAGE,
            "SortBy": "FinalObjectiveMetricValue",
            "SortOrder": "Descending" if maximize else "Ascending",
        }
        if token:
            params["NextToken"] = token
        page = clients.sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(**params)
        trials.extend(_trial(s) for s in page.get("TrainingJobSummaries", []))
        token = page.get("NextToken")
        if not token:
            return sorted_trials(trials, maximize)


def best_of(clients: AwsClients, description: Mapping[str, Any], maximize: bool) -> TuningResult:
    """The Completed tuning job's best trial, its model's S3 URI and the trial table."""
    name = description["HyperParameterTuningJobName"]
    best = description.get("BestTrainingJob")
    if not best or "FinalHyperParameterTuningJobObjectiveMetric" not in best:
        raise JobFailedError(
            name,
            "it completed without a best training job: no trial reported the objective metric "
            "(check the metric_definitions regex against the trials' logs)",
        )
    training = clients.sagemaker.describe_training_job(TrainingJobName=best["TrainingJobName"])
    objective = best["FinalHyperParameterTuningJobObjectiveMetric"]
    return TuningResult(
        tuning_job_name=name,
        best_training_job=best["TrainingJobName"],
        best_parameters={
            k: decode_value(v) for k, v in best.get("TunedHyperParameters", {}).items()
        },
        objective_metric=objective["MetricName"],
        objective_value=float(objective["Value"]),
        model_uri=training["ModelArtifacts"]["S3ModelArtifacts"],
        trials=list_trials(clients, name, maximize),
    )


def run_tuning(
    clients: AwsClients,
    request: Mapping[str, Any],
    *,
    log: LogSink = print,
    watch: Watch | None = None,
    on_handle: Callable[[str], None] | None = None,
) -> TuningResult:
    """Run the tuning job ``request`` describes (or reattach to it) to completion; its winner.

    Raises ``JobFailedError`` when the job fails, is stopped or completes with no best trial, and
    ``StepCancelledError`` after stopping it on SIGTERM (which stops its trials too).
    """
    description = run_job(clients, TUNING, request, log=log, watch=watch, on_handle=on_handle)
    objective = request["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    result = best_of(clients, description, objective["Type"] == "Maximize")
    log(
        f"[{result.tuning_job_name}] best trial {result.best_training_job}: "
        f"{result.objective_metric}={result.objective_value:g}  {result.model_uri}"
    )
    return result
