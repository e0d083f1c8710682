"""Train: run the workload's script on the chosen compute and keep its ``model.tar.gz`` and
``output.tar.gz`` (what it wrote to ``SM_OUTPUT_DATA_DIR``)."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.components.compute import backend_for
from flywheel.components.compute.backend import (
    ComputeBackend,
    LogSink,
    TrainingJobSpec,
    TrainingResult,
)
from flywheel.components.contract.channels import write_channel
from flywheel.components.contract.packaging import (
    code_digest,
    code_with_dependencies,
    pack_folder,
)
from flywheel.components.contract.workload import Workload, load_workload
from flywheel.components.data.rows import read_table
from flywheel.components.steps.runtime import TRIAL_EVENTS_VARIABLE, record_event

if TYPE_CHECKING:  # Optuna comes with the judge, imported only for a trial handed its study
    from flywheel.components.steps.trial_pruning import TrialJudge


@dataclass(frozen=True)
class TrainedModel:
    job_name: str
    compute: str
    hyperparameters: dict[str, Any]
    training_metrics: dict[str, float]
    code_sha256: str
    entry_point: str
    # Whether the script wrote anything to SM_OUTPUT_DATA_DIR (else output.tar.gz is empty).
    output_data_written: bool = False
    # Each metric's ``(step, value)`` pairs as the log showed them: its learning curve.
    metric_series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    workload_name: str = ""
    # Metric definitions that matched no line of the log: named, not left silently empty.
    unmatched_metrics: tuple[str, ...] = ()
    # The metric that ranks runs, and its goal (``ranking_objective``).
    objective: str = ""
    objective_goal: str = ""
    # A tuning trial judged while it trained (``trial_pruning.Pruning.as_metadata``): its number,
    # the log step its pruner stopped it at (None: it ran to its end). Empty when not judged.
    pruning: dict[str, Any] = field(default_factory=dict)

    @property
    def pruned_at_step(self) -> int | None:
        """The log step the trial's pruner stopped it at; None when it ran to its end."""
        return self.pruning.get("pruned_at_step")


def job_name_for(workload_name: str, *parts: object) -> str:
    """A deterministic job name: the same inputs give the same name (SageMaker's 63-char rule)."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[
        :12
    ]
    return f"{workload_name[:50]}-{digest}"


def lay_out_channels(workload: Workload, splits: Mapping[str, Path], root: Path) -> dict[str, str]:
    """Write each declared channel from its split, as the workload lays it out; name to folder.

    A split that is a folder (``run_processing``'s outputs: a preprocessing script already wrote
    the files) reaches the script as it is: its subfolder named after the channel, if it has one,
    else the whole folder.
    """
    channels: dict[str, str] = {}
    tables = {split: path for split, path in splits.items() if not path.is_dir()}
    rows_by_split = {split: read_table(str(path))[1] for split, path in tables.items()}
    for layout in workload.channels:
        split = splits[layout.split]
        if split.is_dir():
            own = split / layout.name
            channels[layout.name] = str(own if own.is_dir() else split)
            continue
        written = write_channel(
            layout, rows_by_split[layout.split], workload.columns.label, root / layout.name
        )
        channels[layout.name] = str(written.parent)
    return channels


def train_model(
    *,
    workload_path: str,
    compute: str,
    compute_config: Mapping[str, Any] | None = None,
    hyperparameters: Mapping[str, object],
    train_path: Path,
    test_path: Path,
    model_path: Path,
    brought_channels: Mapping[str, str] | None = None,
    output_data_path: Path | None = None,
    study_path: Path | None = None,
    trial_number: int = -1,
    log: LogSink = print,
) -> TrainedModel:
    """Train and write the packed model to ``model_path``; hyperparameters are checked first.

    ``brought_channels`` (name to a local path or ``s3://`` URI) reach the script as they are,
    instead of the channel laid out from the split. ``output_data_path``, when given, receives
    ``output.tar.gz``: what the script wrote to ``SM_OUTPUT_DATA_DIR``, an empty archive if nothing.

    With ``study_path`` (the round's journal) this is tuning trial ``trial_number``: while it
    trains, its pruner may stop it (``steps.trial_pruning``). A stopped trial ends normally, its
    model an empty archive whose ``pruning`` says the step, its metrics the series up to the stop.
    """
    brought = dict(brought_channels or {})
    workload = load_workload(workload_path)
    resolved = workload.resolve_hyperparameters(hyperparameters)
    backend = backend_for(compute, compute_config)
    code_sha256 = code_digest(workload.source_dir, workload.dependencies)
    job_name = job_name_for(
        workload.name,
        resolved,
        code_sha256,
        str(train_path),
        str(test_path),
        [asdict(layout) for layout in workload.channels],
        brought,
    )
    with tempfile.TemporaryDirectory(prefix="flywheel-train-") as scratch:
        judge = _judge(workload, compute, study_path, trial_number, Path(scratch))
        channel_dirs = {
            **lay_out_channels(
                workload, {"train": train_path, "test": test_path}, Path(scratch) / "channels"
            ),
            **brought,
        }
        job = workload.training_job(
            job_name=job_name,
            channels=channel_dirs,
            hyperparameters=resolved,
            output_location=scratch,
            # Dependencies travel beside the script, as in the SDK's sourcedir.tar.gz.
            source_dir=code_with_dependencies(
                workload.source_dir, workload.dependencies, Path(scratch)
            ),
        )
        if judge is None:
            result = backend.train(job, log)
        else:
            result = _judged_training(backend, job, judge, log, Path(scratch))
        model_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(result.model_artifact, model_path)
        if output_data_path is not None:
            keep_output_data(result.output_data_artifact, output_data_path, Path(scratch))
        # Read while its private journal, in the scratch folder, is still there.
        pruning = {} if judge is None else judge.pruning().as_metadata()
    objective, objective_goal = ranking_objective(workload)
    trained = TrainedModel(
        # The backend's own job name: on SageMaker it names the training job in the console.
        job_name=result.job_name,
        compute=compute,
        hyperparameters=resolved,
        training_metrics=dict(result.metrics),
        code_sha256=code_sha256,
        entry_point=workload.entry_point,
        output_data_written=result.output_data_artifact is not None,
        metric_series={name: list(points) for name, points in result.metric_series.items()},
        workload_name=workload.name,
        unmatched_metrics=tuple(
            d.name for d in workload.metric_definitions if d.name not in result.metrics
        ),
        objective=objective,
        objective_goal=objective_goal,
        pruning=pruning,
    )
    if trained.pruned_at_step is not None:
        log(
            f"{trained.job_name}: pruned at step {trained.pruned_at_step} "
            f"({objective}={trained.training_metrics.get(objective)}): the study's pruner stopped "
            "the trial, its job is stopped"
        )
    if trained.unmatched_metrics:
        log(
            f"{trained.job_name}: no log line matched metric definition(s) "
            f"{', '.join(trained.unmatched_metrics)}"
        )
    record_event(
        {
            "event": "trained",
            "job_name": trained.job_name,
            "hyperparameters": resolved,
            "metrics": trained.training_metrics,
            "pruned_at_step": trained.pruned_at_step,
        },
        TRIAL_EVENTS_VARIABLE,
    )
    return trained


def _judge(
    workload: Workload,
    compute: str,
    study_path: Path | None,
    trial_number: int,
    scratch: Path,
) -> TrialJudge | None:
    """The pruner's judge of a tuning trial handed its study; None for any other training."""
    if study_path is None:
        return None
    from flywheel.components.steps.trial_pruning import judge_for

    return judge_for(workload, compute, study_path, trial_number, scratch)


def _judged_training(
    backend: ComputeBackend, job: TrainingJobSpec, judge: TrialJudge, log: LogSink, scratch: Path
) -> TrainingResult:
    """Train with ``judge`` following the log; a job it stops leaves the metrics it logged up to
    the stop, an empty ``model.tar.gz`` and no output data."""
    from flywheel.components.steps.trial_pruning import TrialPruned

    try:
        return backend.train(job, judge.sink(log))
    except TrialPruned:
        nothing = scratch / "pruned-model"
        nothing.mkdir()
        return TrainingResult(
            job_name=job.job_name,
            model_artifact=str(pack_folder(nothing, scratch / "pruned-model.tar.gz")),
            metrics=dict(judge.collector.final),
            metric_series=dict(judge.collector.series),
        )


def ranking_objective(workload: Workload) -> tuple[str, str]:
    """The metric that ranks training runs, and its goal: the tuning objective (a logged metric),
    else the gate's (an evaluation score, recorded on the run when its model is registered)."""
    if workload.tuning is not None:
        goal = "maximize" if workload.tuning.maximize else "minimize"
        return workload.tuning.objective_metric, goal
    return workload.objective_metric, workload.objective_goal


def keep_output_data(artifact: str | None, target: Path, scratch: Path) -> None:
    """Move the job's ``output.tar.gz`` to ``target``; with none, write an empty one there, so a
    step wired to it always finds a valid archive."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if artifact is not None:
        shutil.move(artifact, target)
        return
    nothing = scratch / "no-output-data"
    nothing.mkdir()
    pack_folder(nothing, target)
