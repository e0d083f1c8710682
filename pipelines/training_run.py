"""``flywheel run training``: check the request, run the pipeline locally, summarise the result.

KFP is imported only when a pipeline is to run: the same inputs on the registry their last run
left have that run's outcome, reported without starting anything (``pipelines.registry_state``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flywheel.components.compute import backend_for
from flywheel.components.compute.eks import DEFAULT_PLACEMENT_FILE, Placement, load_placement
from flywheel.components.compute.sagemaker.s3 import parse_s3_uri
from flywheel.components.contract.packaging import sha256_of_file, sha256_of_tree
from flywheel.components.contract.training import validate_channel_name
from flywheel.components.contract.workload import DataColumns, is_builtin, load_workload
from flywheel.components.data import batches as data
from flywheel.components.data import tables
from flywheel.components.data.bundles import is_bundle
from flywheel.components.errors import InvalidSpecError
from flywheel.components.registry import (
    LocalModelRegistry,
    ModelRegistry,
    ModelVersion,
    open_registry,
)
from flywheel.components.steps.training_plan import TRAINING_ONLY
from flywheel.pipelines.approval_cli import approval_summary
from flywheel.pipelines.registry_state import STATES_FILE, RegistryStates, inputs_key
from flywheel.pipelines.requests import TrainingRequest
from flywheel.pipelines.run_record import LocalRun, TaskLog

TRAINING_PIPELINE = "flywheel-training"
EKS_TRAINING_PIPELINE = "flywheel-training-eks-gpu"


@dataclass(frozen=True)
class TrainingOutcome:
    version: ModelVersion
    promoted: bool
    run: LocalRun
    # False for a training-only workload: nothing scored the model, so no gate compared it.
    scored: bool = True


def pipeline_arguments(request: TrainingRequest, *, tunes: bool = False) -> dict[str, Any]:
    """Check everything that can be checked before a task starts, and build the run's arguments.

    Paths are made absolute so tasks find them whatever their working folder. ``tunes`` (the
    tuning pipeline) checks the tuning job's calls too, on SageMaker.
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
        from flywheel.components.compute.sagemaker.clients import check_credentials

        check_credentials()
    if request.compute == "sagemaker":
        from flywheel.components.compute.sagemaker import SageMakerConfig
        from flywheel.components.compute.sagemaker.permissions import (
            RunUses,
            check_caller_permissions,
        )

        # The registry's calls too, on its own region, bucket and model package group.
        uses = RunUses(
            registry=request.registry,
            model_name=request.model_name or workload.name,
            tuning=tunes,
        )
        check_caller_permissions(SageMakerConfig.from_mapping(compute_config), uses)
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
    # A preprocessing script reads the raw table its own way: the prepare task checks its output.
    source = _checked_source(request, None if workload.preprocessing else workload.columns)
    channels, channels_digest = brought_channels(request.channels)
    script_dirs = sorted(
        {str(step.source_dir) for step in (workload.preprocessing, workload.evaluation) if step}
        - {str(workload.source_dir)}
    )
    code = hashlib.sha256(
        (
            sha256_of_tree(workload.source_dir)
            + "".join(sha256_of_tree(Path(folder)) for folder in script_dirs)
            + sha256_of_file(workload.path)
            + channels_digest
        ).encode()
    ).hexdigest()
    return {
        # A packaged example or a bundle stays a reference each task resolves in its own pod. A
        # path is made absolute; note that kfp.local replaces every "python3" in a task's
        # arguments with its interpreter, so a path through a python3.x folder would be mangled.
        "workload": request.workload
        if is_builtin(request.workload) or is_bundle(request.workload)
        else str(workload.path),
        "source": source,
        "compute": request.compute,
        "compute_config": compute_config,
        "hyperparameters": hyperparameters,
        "channels": channels,
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
        "source_fingerprint": tables.source_fingerprint(source),
        "code_fingerprint": code,
    }


def _checked_source(request: TrainingRequest, columns: DataColumns | None) -> str:
    """The source as the tasks will see it, checked as far as its header and metadata allow.

    Only the schema (and a Parquet file's row count) is read here; the rows are read once, by
    the prepare task, which checks every value as it streams. Without ``columns`` (a
    preprocessing script turns the source into the table the workload describes) only that it
    can be read is checked: its columns, order and size are the script's output's, checked there.
    """
    stream = tables.open_table(request.source)
    if not _has_rows(stream):
        raise InvalidSpecError("source", f"{request.source} has no rows, only a header")
    if columns is not None:
        data.check_columns(request.source, stream.columns, columns)
        if request.order_by and request.order_by not in stream.columns:
            raise InvalidSpecError(
                "--order-by",
                f"no column {request.order_by!r}; columns: {', '.join(stream.columns)}",
            )
        if stream.num_rows is not None:
            data.batch_bounds(stream.num_rows, request.batch_count)
    if request.source.startswith((tables.BUILTIN_PREFIX, tables.S3_PREFIX)):
        return request.source
    return str(Path(request.source).resolve())


def _has_rows(stream: tables.TableStream) -> bool:
    """Whether the table has a row: from the metadata where the file states it, else by reading
    one column up to its first row (a block of the file, not the table)."""
    if stream.num_rows is not None:
        return stream.num_rows > 0
    batches = stream.batches(stream.columns[:1])
    try:
        return any(batch.num_rows for batch in batches)
    finally:
        batches.close()


def brought_channels(channels: dict[str, str]) -> tuple[dict[str, str], str]:
    """``--channel`` values checked (local paths made absolute), and a digest of what they hold.

    An S3 prefix is keyed by its URI alone: its objects are read only by the job.
    """
    checked, digest = {}, hashlib.sha256()
    for name, location in sorted(channels.items()):
        field = f"--channel {name}"
        try:
            validate_channel_name(name)
        except ValueError as error:
            raise InvalidSpecError(field, str(error)) from None
        if location.startswith("s3://"):
            parse_s3_uri(field, location)  # a valid bucket and a prefix, or one line naming it
            checked[name], content = location, location
        else:
            path = Path(location).resolve()
            if not path.exists():
                raise InvalidSpecError(field, f"{location} does not exist")
            checked[name] = str(path)
            content = sha256_of_tree(path) if path.is_dir() else sha256_of_file(path)
        digest.update(f"{name}={content};".encode())
    return checked, digest.hexdigest() if checked else ""


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
    same pipeline and training code run here on the CPU. The registry steps are cached by the
    registry's state (``pipelines.registry_state``), so an unchanged re-run executes nothing.
    """
    arguments = pipeline_arguments(request)
    workload = load_workload(request.workload)
    model_name = request.model_name or workload.name
    registry = open_registry(arguments["registry"])
    states = RegistryStates(Path(request.pipeline_root) / STATES_FILE)
    eks = request.compute == "eks-gpu"
    inputs = inputs_key(EKS_TRAINING_PIPELINE if eks else TRAINING_PIPELINE, arguments)
    state = _state(registry, model_name)
    earlier = states.earlier_run(inputs, state) if request.cache else None
    if earlier is not None:
        run = LocalRun(
            outputs=earlier,
            run_dir=Path(earlier["run_dir"]),
            log_file=Path(earlier["log_file"]),
            tasks=TaskLog(),
            reused=True,
        )
        version = registry.get(model_name, int(earlier["version"]))
        return TrainingOutcome(
            version=version, promoted=bool(earlier["promoted"]), run=run, scored=workload.scores
        )
    from flywheel.pipelines.local_runner import run_locally
    from flywheel.pipelines.training import eks_training_pipeline, local_training_pipeline

    pipeline = local_training_pipeline
    if eks:
        pipeline = eks_training_pipeline(
            Placement.from_mapping(arguments["compute_config"]), cache_registry_steps=True
        )
    arguments["registry_state"] = states.key_for(inputs, state)
    if not workload.scores and console is not None:
        console.print(TRAINING_ONLY, highlight=False)
    run = run_locally(
        pipeline,
        arguments,
        pipeline_root=Path(request.pipeline_root),
        cache=request.cache,
        verbose=verbose,
        console=console,
    )
    version = registry.get(model_name, int(run.outputs["version"]))
    outcome = {
        "version": version.version,
        "promoted": _promoted(version, run.tasks),
        "run_dir": str(run.run_dir),
        "log_file": str(run.log_file),
    }
    states.remember(inputs, arguments["registry_state"], _state(registry, model_name), outcome)
    return TrainingOutcome(
        version=version, promoted=outcome["promoted"], run=run, scored=workload.scores
    )


def _promoted(version: ModelVersion, tasks: TaskLog) -> bool:
    """Whether this run's promote step (run, or taken from the cache) made ``version`` champion.

    The promote step refuses when the champion changed while the run compared against another,
    so the registry's stage says what the step did; a version that was already the champion
    never reaches the step.
    """
    promote = "promote-model" in tasks.succeeded or "promote-model" in tasks.cached
    return promote and version.stage == "champion"


def _state(registry: ModelRegistry, model_name: str) -> str | None:
    """The local registry's state fingerprint; None (never cached) for any other registry."""
    if isinstance(registry, LocalModelRegistry):
        return registry.state_fingerprint(model_name)
    return None


def version_table(
    version: ModelVersion,
    run: LocalRun,
    *,
    gate: str,
    tasks: str,
    details: Sequence[tuple[str, str]] = (),
) -> Table:
    """The version a run registered, as a run ends: its stage and what the gate did, approval,
    ``details``, metrics, what ran, and where the model, artifacts and log are."""
    table = Table(
        title=f"{version.name} version {version.version}", show_header=False, title_justify="left"
    )
    table.add_column(style="bold")
    table.add_column()
    table.add_row("stage", f"{version.stage} ({gate})")
    table.add_row("approval", approval_summary(version))
    for name, value in details:
        table.add_row(name, value)
    for name, value in version.metrics.items():
        table.add_row(name, f"{value:.4f}")
    table.add_row("tasks", tasks)
    table.add_row("model", version.model_uri)
    table.add_row("artifacts", str(run.run_dir))
    table.add_row("log", str(run.log_file))
    return table


def summary_table(outcome: TrainingOutcome) -> Table:
    """The short table a person reads at the end of a run."""
    gate = "promoted" if outcome.promoted else "not promoted"
    tasks = outcome.run.tasks
    if not outcome.scored:
        gate = "training only: not scored, so not compared with the champion"
    elif outcome.run.reused or "decide-promotion" in tasks.cached:
        gate += " by the earlier run of these inputs"
    return version_table(
        outcome.version,
        outcome.run,
        gate=gate,
        tasks="none ran: the earlier run of these inputs left the registry as it is"
        if outcome.run.reused
        else f"{len(tasks.succeeded)} ran, {len(tasks.skipped)} skipped, others from cache",
    )
