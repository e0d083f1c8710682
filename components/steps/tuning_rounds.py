"""One round of a local or EKS search, as the tuning components run it: plain functions of paths.

A round is ``suggest`` (the journal asks Optuna for up to ``max_parallel_jobs`` trials), one
``train_model`` task per trial, ``score`` (each trial's objective, read from the metrics its
training job logged) and ``record`` (the journal told every outcome, and the best model so far
carried on). The journal travels as a KFP artifact from round to round: each step copies the one
it was given and works on the copy, so a retried task starts from the same file and the artifact it
read stays as it was.

The best model so far is carried as an artifact too, not looked up by URI at the end: a task pod on
a cluster can read only the artifacts handed to it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.components.contract.tuning import TuningSpec
from flywheel.components.contract.workload import Workload, load_workload
from flywheel.components.errors import InvalidSpecError, JobFailedError

# ``flywheel run tuning`` sets this to a file; each scored trial appends one JSON line to it, so
# the command prints a line per trial as it finishes. Unset on a cluster: nothing is written.
TRIAL_EVENTS_VARIABLE = "FLYWHEEL_TRIAL_EVENTS"


def tuning_of(workload: Workload) -> TuningSpec:
    """The workload's search, or one line saying it declares none."""
    if workload.tuning is None:
        raise InvalidSpecError(
            "tuning", f"the workload {workload.name!r} ({workload.path}) has no tuning section"
        )
    return workload.tuning


def copy_journal(journal_in: Path | None, journal_out: Path) -> None:
    """Start ``journal_out`` from ``journal_in`` (a fresh, empty study when there is none)."""
    journal_out.parent.mkdir(parents=True, exist_ok=True)
    if journal_in is not None and journal_in.is_file():
        shutil.copyfile(journal_in, journal_out)
    else:
        journal_out.unlink(missing_ok=True)


def check_compiled_rounds(spec: TuningSpec, rounds: int, round_size: int) -> None:
    """Refuse, naming ``tuning.max_jobs``, a search that does not fill a pipeline compiled for
    ``rounds`` rounds of ``round_size`` trials.

    Each round asks ``max_parallel_jobs`` trials, so the search takes
    ``ceil(max_jobs / max_parallel_jobs)`` rounds. Past the compiled ones it would silently stop.
    Short of them, the last rounds would ask no trial, and an empty ``dsl.ParallelFor`` gives
    its ``dsl.Collected`` consumer nothing to read on kfp.local (KFP 2.17 fails the run naming
    the loop), so the record step that would carry the best model on never runs.
    """
    needed = math.ceil(spec.max_jobs / spec.max_parallel_jobs)
    if needed == rounds:
        return
    fits = f"{(rounds - 1) * spec.max_parallel_jobs + 1} to {rounds * spec.max_parallel_jobs}"
    raise InvalidSpecError(
        "tuning.max_jobs",
        f"{spec.max_jobs} trials, {spec.max_parallel_jobs} at a time, take {needed} "
        f"round{'s' if needed != 1 else ''}, but this pipeline was compiled for {rounds} rounds "
        f"of {round_size} trials and runs every one; set max_jobs to {fits}, or run the workload "
        "with `flywheel run tuning`, which builds the rounds its search needs",
    )


def suggest_trials(
    *,
    workload_path: str,
    hyperparameters: Mapping[str, Any],
    journal_in: Path | None,
    journal_out: Path,
    compiled_rounds: int = 0,
    compiled_round_size: int = 0,
) -> list[dict[str, Any]]:
    """The round's trials, ``{"number": n, "hyperparameters": {...}}``, and the journal that
    asked them, in ``journal_out``.

    Each trial's hyperparameters are the static ones (``hyperparameters``, checked against the
    workload) with the searched ones set, so the train task's inputs, and its cache key, are the
    trial's whole configuration. An empty list means the search is done. With
    ``compiled_rounds`` (the first round of a compiled pipeline), a search that does not fill
    those rounds is refused before any trial runs (:func:`check_compiled_rounds`).
    """
    from flywheel.components.steps.tuning_study import suggest_round

    workload = load_workload(workload_path)
    spec = tuning_of(workload)
    if compiled_rounds:
        check_compiled_rounds(spec, compiled_rounds, compiled_round_size)
    workload.resolve_hyperparameters(hyperparameters)  # refuses unknown names and bad values
    static = {k: v for k, v in hyperparameters.items() if k not in spec.tuned}
    copy_journal(journal_in, journal_out)
    return [
        {"number": trial["number"], "hyperparameters": {**static, **trial["hyperparameters"]}}
        for trial in suggest_round(journal_out, spec, spec.max_parallel_jobs)
    ]


def score_trial(
    *,
    workload_path: str,
    number: int,
    hyperparameters: Mapping[str, Any],
    training_metrics: Mapping[str, Any],
    job_name: str,
) -> dict[str, Any]:
    """A trial's outcome: its objective as its training job logged it (None when the metric
    never appeared, which fails the trial), with what identifies its model."""
    from flywheel.components.steps.register import as_declared

    workload = load_workload(workload_path)
    spec = tuning_of(workload)
    value = training_metrics.get(spec.objective_metric)
    outcome = {
        "number": int(number),
        # Typed again: KFP hands a loop item's numbers over as floats (``n_estimators: 80.0``).
        "hyperparameters": as_declared(hyperparameters, workload.hyperparameters),
        "objective": None if value is None else float(value),
        "metric": spec.objective_metric,
        "job_name": job_name,
    }
    target = os.environ.get(TRIAL_EVENTS_VARIABLE)
    if target:
        with Path(target).open("a") as events:
            events.write(json.dumps(outcome) + "\n")
    return outcome


@dataclass(frozen=True)
class TrialModel:
    """A trained model a record step was handed: its file and the train task's metadata."""

    path: Path
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedRound:
    """What a record step leaves: the trial table, and the best model so far (None before any
    trial completed) with the metadata the register step records as the tuning lineage."""

    trials: list[dict[str, Any]]
    best: TrialModel | None
    remaining: int


def _tuning_lineage(spec: TuningSpec, row: Any, trial_count: int, run: str) -> dict[str, Any]:
    return {
        "engine": "optuna",
        "run": run,
        "strategy": spec.strategy,
        "trial": row.number,
        "parameters": {k: v for k, v in row.hyperparameters.items() if k in spec.tuned},
        "objective": {
            "metric": spec.objective_metric,
            "type": spec.objective_type,
            "value": row.objective,
        },
        "trials": trial_count,
        "max_jobs": spec.max_jobs,
    }


def _winner_model(
    number: int,
    results: Sequence[Mapping[str, Any]],
    models: Sequence[TrialModel],
    best_in: TrialModel | None,
) -> TrialModel:
    """The winning trial's model: this round's, matched by its training job's name, or the one
    carried on from an earlier round."""
    result = next((r for r in results if int(r["number"]) == number), None)
    if result is not None:
        by_job = {m.metadata.get("job_name"): m for m in models}
        if result["job_name"] in by_job:
            return by_job[result["job_name"]]
        raise InvalidSpecError(
            "models", f"no model of trial {number} (job {result['job_name']}) among the round's"
        )
    carried = (best_in.metadata.get("tuning") or {}) if best_in is not None else {}
    if best_in is None or int(carried.get("trial", -1)) != number:
        raise InvalidSpecError(
            "best_so_far", f"trial {number} is the best, but no step handed its model on"
        )
    return best_in


def record_trials(
    *,
    workload_path: str,
    results: Sequence[Mapping[str, Any]],
    models: Sequence[TrialModel],
    journal_in: Path,
    journal_out: Path,
    best_in: TrialModel | None,
    best_out: Path,
    run: str,
) -> RecordedRound:
    """Tell the journal the round's outcomes and keep the best model so far in ``best_out``.

    A trial recorded before (a retried round) is not told again. The best so far is this
    round's winner if it beats ``best_in``, which is carried on otherwise; models are matched to
    trials by their training job's name, since KFP does not promise the order of collected
    outputs on a cluster.
    """
    from flywheel.components.steps.tuning_study import record_round, trials_table

    spec = tuning_of(load_workload(workload_path))
    copy_journal(journal_in, journal_out)
    record_round(journal_out, spec, {int(r["number"]): r.get("objective") for r in results})
    rows = trials_table(journal_out)
    trials = [
        {
            "number": row.number,
            "state": row.state,
            "hyperparameters": dict(row.hyperparameters),
            "objective": row.objective,
            "best": row.best,
        }
        for row in rows
    ]
    remaining = max(spec.max_jobs - len(rows), 0)
    winner = rows[0] if rows and rows[0].best else None
    if winner is None:
        if remaining == 0 and not any(row.state == "RUNNING" for row in rows):
            raise JobFailedError(
                "tuning",
                f"none of its {len(rows)} trials reported {spec.objective_metric!r} "
                "(check the metric_definitions regex against the training log)",
            )
        return RecordedRound(trials, None, remaining)
    chosen = _winner_model(winner.number, results, models, best_in)
    best_out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(chosen.path, best_out)
    metadata = {
        **{k: v for k, v in chosen.metadata.items() if k != "tuning"},
        "tuning": _tuning_lineage(spec, winner, len(rows), run),
    }
    return RecordedRound(trials, TrialModel(best_out, metadata), remaining)


def tuning_lineage(tuning: Mapping[str, Any], workload: Workload) -> dict[str, Any]:
    """The ``tuning`` lineage a register step records, in the types the workload declares.

    It reaches that step in the model's metadata, through KFP's protobuf Struct, which turns
    every number into a float (``trial: 2.0``, ``n_estimators: 263.0``).
    """
    from flywheel.components.steps.register import as_declared

    def whole(value: Any) -> Any:
        return int(value) if isinstance(value, float) and value.is_integer() else value

    return {
        **tuning,
        "trial": whole(tuning.get("trial")),
        "trials": whole(tuning.get("trials")),
        "max_jobs": whole(tuning.get("max_jobs")),
        "parameters": as_declared(tuning.get("parameters", {}), workload.hyperparameters),
    }
