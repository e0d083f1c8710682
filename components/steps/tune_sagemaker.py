"""Tune on SageMaker: the workload's search as one Automatic Model Tuning job, its winner fetched.

The trials are the training job ``train_model`` would run on SageMaker (the same staging of code
and channels, the same ``CreateTrainingJob`` request), handed to ``compute.sagemaker.tuning`` as
the tuning job's ``TrainingJobDefinition``. The best trial's ``model.tar.gz`` is downloaded so the
pipeline continues with a ``Model`` artifact like any trained one.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.components.compute.backend import LogSink
from flywheel.components.compute.sagemaker.clients import AwsClients
from flywheel.components.compute.sagemaker.images import resolve_image
from flywheel.components.compute.sagemaker.remote_runner import Watch
from flywheel.components.compute.sagemaker.s3 import Stager, parse_s3_uri
from flywheel.components.compute.sagemaker.specs import SageMakerConfig
from flywheel.components.compute.sagemaker.training import training_request
from flywheel.components.compute.sagemaker.tuning import TuningResult, run_tuning, tuning_request
from flywheel.components.contract.packaging import code_digest, code_with_dependencies, pack_source
from flywheel.components.contract.workload import load_workload
from flywheel.components.steps.train import job_name_for, lay_out_channels
from flywheel.components.steps.tuning_rounds import tuning_of


@dataclass(frozen=True)
class TunedModel:
    """The tuning job's result, with the winner's model at ``model_path`` and what the register
    step records: the trial's job, hyperparameters, metrics, code and tuning lineage."""

    result: TuningResult
    metadata: Mapping[str, Any]
    trials: list[dict[str, Any]]


def tune_on_sagemaker(
    *,
    workload_path: str,
    compute_config: Mapping[str, Any],
    hyperparameters: Mapping[str, Any],
    train_path: Path,
    test_path: Path,
    model_path: Path,
    run_id: str,
    log: LogSink = print,
    clients: AwsClients | None = None,
    watch: Watch | None = None,
) -> TunedModel:
    """Run (or reattach to) the tuning job and download its best trial's model to ``model_path``."""
    workload = load_workload(workload_path)
    spec = tuning_of(workload)
    resolved = workload.resolve_hyperparameters(hyperparameters)
    config = SageMakerConfig.from_mapping(compute_config)
    clients = clients or AwsClients.connect(config.region, config.endpoint_url)
    stager = Stager(clients.s3, config.s3_prefix)
    code_sha256 = code_digest(workload.source_dir, workload.dependencies)
    with tempfile.TemporaryDirectory(prefix="flywheel-tune-") as scratch:
        root = Path(scratch)
        channel_dirs = lay_out_channels(
            workload, {"train": train_path, "test": test_path}, root / "channels"
        )
        job = workload.training_job(
            job_name=job_name_for(workload.name, "tune", resolved, code_sha256),
            channels=channel_dirs,
            hyperparameters=resolved,
            output_location=scratch,
            source_dir=code_with_dependencies(workload.source_dir, workload.dependencies, root),
        )
        code = stager.plan_file(pack_source(Path(job.source_dir), root), "code")
        channels = {
            name: stager.plan_location(f"channels.{name}", location, f"data/{name}")
            for name, location in job.channels.items()
        }
        training = training_request(
            job,
            config,
            image=resolve_image(config, clients.region, "training", config.instance_type),
            code=code.uri,
            channels={name: staged.uri for name, staged in channels.items()},
            region=clients.region,
        )
        request = tuning_request(spec, training, run_id=run_id)  # checked before any upload
        stager.upload(code, *channels.values())
        result = run_tuning(clients, request, log=log, watch=watch)
        stager.download_file(parse_s3_uri("ModelArtifacts", result.model_uri), model_path)
    best = next((t for t in result.trials if t.name == result.best_training_job), None)
    metadata = {
        "job_name": result.best_training_job,
        "compute": "sagemaker",
        "hyperparameters": {**resolved, **result.best_parameters},
        "metrics": {result.objective_metric: result.objective_value},
        "code_sha256": code_sha256,
        "entry_point": workload.entry_point,
        "format": "model.tar.gz",
        "tuning": {
            "engine": "sagemaker",
            "run": result.tuning_job_name,
            "strategy": spec.strategy,
            "trial": result.best_training_job,
            "parameters": dict(result.best_parameters),
            "objective": {
                "metric": result.objective_metric,
                "type": spec.objective_type,
                "value": result.objective_value if best is None else best.objective,
            },
            "trials": len(result.trials),
            "max_jobs": spec.max_jobs,
        },
    }
    trials = [
        {
            "number": index,
            "name": trial.name,
            "state": trial.status,
            "hyperparameters": dict(trial.parameters),
            "objective": trial.objective,
            "best": trial.name == result.best_training_job,
        }
        for index, trial in enumerate(result.trials)
    ]
    return TunedModel(result=result, metadata=metadata, trials=trials)
