"""``flywheel run evaluation``: check the request, run the evaluation pipeline locally, summarise.

The evaluation pipeline retrains with the training pipeline nested inside it, so a request carries
a ``TrainingRequest`` for the data, compute and hyperparameters, and adds the evaluation's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flywheel.components.contract.workload import load_workload
from flywheel.components.errors import InvalidSpecError
from flywheel.components.monitoring.cloudwatch import CloudWatchTarget
from flywheel.components.monitoring.history import EvaluationHistory
from flywheel.components.monitoring.notify import NotifyTarget
from flywheel.components.monitoring.thresholds import parse_threshold
from flywheel.components.registry import open_registry
from flywheel.pipelines.evaluation import DEFAULT_HISTORY, DEFAULT_THRESHOLD, evaluation_pipeline
from flywheel.pipelines.local_runner import run_locally
from flywheel.pipelines.report import trained_on
from flywheel.pipelines.run_record import LocalRun
from flywheel.pipelines.training_run import TrainingRequest, pipeline_arguments


@dataclass(frozen=True)
class EvaluationRequest:
    batch: int
    threshold: str = DEFAULT_THRESHOLD
    history: str = DEFAULT_HISTORY
    rows_per_shard: int = 5000
    cloudwatch: dict[str, Any] = field(default_factory=dict)
    notify: dict[str, Any] = field(default_factory=dict)
    training: TrainingRequest = field(default_factory=TrainingRequest)


@dataclass(frozen=True)
class EvaluationOutcome:
    batch: int
    champion_before: int
    champion_after: int
    new_versions: list[int]
    evaluation: dict[str, Any]
    decision: dict[str, Any]
    run: LocalRun
    # The scoring model was trained on this batch: its score measures fit, not generalisation.
    in_sample: bool = False


def evaluation_arguments(request: EvaluationRequest) -> dict[str, Any]:
    """Everything checked before any task runs; the arguments of one evaluation run."""
    training = pipeline_arguments(request.training)
    workload = load_workload(request.training.workload)
    parse_threshold(request.threshold, workload.task)
    if not 0 <= request.batch < request.training.batch_count:
        raise InvalidSpecError(
            "--batch", f"must be between 0 and {request.training.batch_count - 1} (--batch-count)"
        )
    if request.rows_per_shard < 1:
        raise InvalidSpecError(
            "--rows-per-shard", f"must be at least 1, got {request.rows_per_shard}"
        )
    CloudWatchTarget.from_config(request.cloudwatch)
    NotifyTarget.from_config(request.notify)
    model_name = request.training.model_name or workload.name
    champion = open_registry(training["registry"]).champion(model_name)
    if champion is None:
        # Nothing to score with is a mistake in what was asked, not a failed run.
        raise InvalidSpecError(
            "--registry",
            f"model {model_name} has no champion in {training['registry']}: "
            "run `flywheel run training` first",
        )
    parse_threshold(request.threshold, workload.task, champion.metrics)
    accepted = evaluation_pipeline.component_spec.inputs or {}
    return {
        **{name: value for name, value in training.items() if name in accepted},
        "batch": request.batch,
        "threshold": request.threshold,
        "history": str(Path(request.history).resolve()),
        "rows_per_shard": request.rows_per_shard,
        "cloudwatch": dict(request.cloudwatch),
        "notify": dict(request.notify),
    }


def run_evaluation(
    request: EvaluationRequest, *, verbose: bool = False, console: Console | None = None
) -> EvaluationOutcome:
    arguments = evaluation_arguments(request)
    model_name = request.training.model_name or load_workload(request.training.workload).name
    registry = open_registry(arguments["registry"])
    before = registry.champion(model_name)
    known = {v.version for v in registry.versions(model_name)}
    history = EvaluationHistory(arguments["history"])
    seen = len(history.records(model_name))
    run = run_locally(
        evaluation_pipeline,
        arguments,
        pipeline_root=Path(request.training.pipeline_root),
        cache=request.training.cache,
        verbose=verbose,
        console=console,
    )
    after = registry.champion(model_name)
    records = history.records(model_name)
    this_run = records[seen:]
    evaluations = [r for r in records if r["kind"] == "evaluation" and r["batch"] == request.batch]
    scored_by = evaluations[-1]["model_version"] if evaluations else None
    return EvaluationOutcome(
        batch=request.batch,
        champion_before=before.version if before else 0,
        champion_after=after.version if after else 0,
        new_versions=sorted({v.version for v in registry.versions(model_name)} - known),
        evaluation=evaluations[-1] if evaluations else {},
        decision=next((r for r in this_run if r["kind"] == "decision"), {}),
        run=run,
        in_sample=scored_by is not None
        and trained_on(registry.get(model_name, scored_by), request.batch),
    )


def evaluation_table(outcome: EvaluationOutcome) -> Table:
    table = Table(title=f"batch {outcome.batch}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "scored by", f"version {outcome.evaluation.get('model_version', outcome.champion_before)}"
    )
    for name, value in sorted(outcome.evaluation.get("metrics", {}).items()):
        table.add_row(name, f"{value:.4f}")
    if outcome.in_sample:
        table.add_row("in-sample", "yes: the scoring version was trained on this batch")
    table.add_row("decision", outcome.decision.get("reason", "-"))
    if outcome.new_versions:
        table.add_row("retrained", ", ".join(f"version {v}" for v in outcome.new_versions))
    table.add_row(
        "champion",
        f"version {outcome.champion_before} -> {outcome.champion_after}"
        if outcome.champion_after != outcome.champion_before
        else f"version {outcome.champion_after}",
    )
    table.add_row("artifacts", str(outcome.run.run_dir))
    return table
