"""``flywheel run training``: check the request, run the pipeline locally, summarise the result."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flywheel.components import data
from flywheel.components.compute import backend_for
from flywheel.components.eks import DEFAULT_PLACEMENT_FILE, Placement, load_placement
from flywheel.components.errors import InvalidSpecError
from flywheel.components.packaging import sha256_of_file, sha256_of_tree
from flywheel.components.registry import ModelVersion, open_registry
from flywheel.components.workload import load_workload
from flywheel.pipelines.local_runner import LocalRun, run_locally
from flywheel.pipelines.requests import TrainingRequest
from flywheel.pipelines.training import eks_training_pipeline, training_pipeline


@dataclass(frozen=True)
class TrainingOutcome:
    version: ModelVersion
    promoted: bool
    run: LocalRun


def _source_fingerprint(source: str) -> str:
    if source.startswith(data.BUILTIN_PREFIX):
        from importlib.metadata import version

        return f"{source}@rdkit-{version('rdkit')}"
    return sha256_of_file(Path(source))


def pipeline_arguments(request: TrainingRequest) -> dict[str, Any]:
    """Check everything that can be checked before a task starts, and build the run's arguments.

    Paths are made absolute so tasks find them whatever their working folder.
    """
    workload = load_workload(request.workload)
    hyperparameters = {
        name: workload.hyperparameters[name].coerce(value)
        for name, value in request.hyperparameters.items()
        if name in workload.hyperparameters
    }
    workload.resolve_hyperparameters(request.hyperparameters)  # refuses unknown names
    compute_config = _compute_config(request)
    backend_for(request.compute, compute_config)
    if request.compute == "sagemaker" or request.registry.startswith("sagemaker://"):
        from flywheel.components.sagemaker.clients import check_credentials

        check_credentials()
    if not 1 <= request.training_batches <= request.batch_count:
        raise InvalidSpecError(
            "--training-batches", f"must be between 1 and --batch-count ({request.batch_count})"
        )
    if not 0 < request.test_fraction < 1:
        raise InvalidSpecError(
            "--test-fraction", f"must be between 0 and 1, got {request.test_fraction}"
        )
    if request.margin < 0:
        raise InvalidSpecError("--margin", f"must be zero or more, got {request.margin}")
    header, rows = data.read_table(request.source)
    data.check_table(request.source, header, rows, workload.columns)
    data.ordered_batches(rows, request.batch_count, request.order_by)
    source = request.source
    if not source.startswith(data.BUILTIN_PREFIX):
        source = str(Path(source).resolve())
    code = hashlib.sha256(
        (sha256_of_tree(workload.source_dir) + sha256_of_file(workload.path)).encode()
    ).hexdigest()
    return {
        "workload": str(workload.path),
        "source": source,
        "compute": request.compute,
        "compute_config": compute_config,
        "hyperparameters": hyperparameters,
        # A folder is made absolute for the tasks; a URI (sagemaker://...) is passed as it is.
        "registry": request.registry
        if "://" in request.registry
        else str(Path(request.registry).resolve()),
        "model_name": request.model_name,
        "batch_count": request.batch_count,
        "training_batches": request.training_batches,
        "test_fraction": request.test_fraction,
        "seed": request.seed,
        "order_by": request.order_by,
        "margin": request.margin,
        "source_fingerprint": _source_fingerprint(source),
        "code_fingerprint": code,
    }


def _compute_config(request: TrainingRequest) -> dict[str, Any]:
    """For ``eks-gpu`` the compute config is the placement: ``--placement FILE`` or the default."""
    if request.compute != "eks-gpu":
        if request.placement:
            raise InvalidSpecError("--placement", "applies only to --compute eks-gpu")
        return dict(request.compute_config)
    if request.placement and request.compute_config:
        raise InvalidSpecError("--placement", "give the placement once, not also as compute config")
    if request.compute_config:
        return dict(request.compute_config)
    return load_placement(request.placement or DEFAULT_PLACEMENT_FILE).to_mapping()


def run_training(
    request: TrainingRequest, *, verbose: bool = False, console: Console | None = None
) -> TrainingOutcome:
    """Run the training pipeline locally and read the registered version back from the registry.

    With ``eks-gpu`` it runs the EKS variant itself: kfp.local ignores the pod placement, so the
    same pipeline and training code run here on the CPU.
    """
    arguments = pipeline_arguments(request)
    pipeline = training_pipeline
    if request.compute == "eks-gpu":
        pipeline = eks_training_pipeline(Placement.from_mapping(arguments["compute_config"]))
    run = run_locally(
        pipeline,
        arguments,
        pipeline_root=Path(request.pipeline_root),
        cache=request.cache,
        verbose=verbose,
        console=console,
    )
    model_name = request.model_name or load_workload(request.workload).name
    version = open_registry(arguments["registry"]).get(model_name, int(run.outputs["version"]))
    return TrainingOutcome(version=version, promoted=bool(run.outputs["promoted"]), run=run)


def summary_table(outcome: TrainingOutcome) -> Table:
    """The short table a person reads at the end of a run."""
    version = outcome.version
    table = Table(
        title=f"{version.name} version {version.version}", show_header=False, title_justify="left"
    )
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "stage", f"{version.stage} ({'promoted' if outcome.promoted else 'not promoted'})"
    )
    for name, value in version.metrics.items():
        table.add_row(name, f"{value:.4f}")
    tasks = outcome.run.tasks
    table.add_row(
        "tasks", f"{len(tasks.succeeded)} ran, {len(tasks.skipped)} skipped, others from cache"
    )
    table.add_row("model", version.model_uri)
    table.add_row("artifacts", str(outcome.run.run_dir))
    table.add_row("log", str(outcome.run.log_file))
    return table
