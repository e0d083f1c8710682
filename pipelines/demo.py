"""``flywheel demo flywheel``: train on the first batches, then replay every later batch in order.

The ChEMBL file lists compounds roughly as the series was optimised, so later batches hold more
active compounds than the first model ever saw: quality drops for real, a retrain fires, and the
new champion scores the following batches.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from flywheel.components.contract.workload import load_workload
from flywheel.pipelines.evaluation import DEFAULT_THRESHOLD
from flywheel.pipelines.evaluation_run import EvaluationOutcome, EvaluationRequest, run_evaluation
from flywheel.pipelines.report import write_report
from flywheel.pipelines.training_run import TrainingRequest, run_training


def replay_flywheel(
    workdir: Path,
    *,
    threshold: str = DEFAULT_THRESHOLD,
    training: TrainingRequest | None = None,
    console: Console | None = None,
) -> tuple[list[EvaluationOutcome], Path]:
    """A fresh registry and history in ``workdir``; returns every batch's outcome and the report PNG."""
    console = console or Console()
    for state in ("registry", "history"):
        shutil.rmtree(workdir / state, ignore_errors=True)
    training = replace(
        training or TrainingRequest(),
        registry=str(workdir / "registry"),
        pipeline_root=str(workdir / "runs"),
    )
    trained = run_training(training, console=console)
    console.print(
        f"trained on batches 0-{training.training_batches - 1}: version {trained.version.version} "
        f"is champion ({trained.version.metrics.get('rmse', float('nan')):.3f} rmse held out)"
    )
    outcomes = []
    for batch in range(training.training_batches, training.batch_count):
        outcome = run_evaluation(
            EvaluationRequest(
                batch=batch,
                threshold=threshold,
                history=str(workdir / "history"),
                training=training,
            ),
            console=console,
        )
        outcomes.append(outcome)
        console.print(outcome_line(outcome))
    model_name = training.model_name or load_workload(training.workload).name
    png, _ = write_report(
        registry_uri=training.registry,
        history_root=str(workdir / "history"),
        model_name=model_name,
        task=load_workload(training.workload).task,
        output_dir=workdir,
        threshold=threshold,
    )
    return outcomes, png


def outcome_line(outcome: EvaluationOutcome) -> str:
    """One line per replayed batch: who scored it, how, and what the loop did."""
    metrics = outcome.evaluation.get("metrics", {})
    scored = ", ".join(f"{k} {v:.3f}" for k, v in sorted(metrics.items()))
    line = f"batch {outcome.batch}: version {outcome.champion_before} scores {scored}"
    line += " (in-sample) -> " if outcome.in_sample else " -> "
    if outcome.new_versions:
        promoted = outcome.champion_after != outcome.champion_before
        line += f"[bold red]retrained[/] version {outcome.new_versions[-1]}"
        line += " [green]promoted[/]" if promoted else " (not better; champion kept)"
    else:
        line += "[green]quality holds[/]"
    return line
