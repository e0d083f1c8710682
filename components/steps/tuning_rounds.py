"""One round of a local or EKS search, as the tuning components run it: plain functions of paths.

A round is ``suggest`` (the journal asks Optuna for up to ``max_parallel_jobs`` trials), one
``train_model`` task per trial (handed the round's journal: its pruner may stop it while it
trains, ``steps.trial_pruning``), and ``record``: each trial's objective read from the metrics
its training job logged (the series too, for early stopping), the journal told every outcome (a
trial's own verdict as it was made), and the best model so far carried on. The journal travels as a KFP artifact from round to round: each step copies the one
it was given and works on the copy, so a retried task starts from the same file and the artifact it
read stays as it was.

The best model so far is carried as an artifact too, not looked up by URI at the end: a task pod on
a cluster can read only the artifacts handed to it.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.components.contract.tuning import TuningSpec
from flywheel.components.contract.workload import Workload, load_workload
from flywheel.components.errors import InvalidSpecError, JobFailedError
from flywheel.components.steps.runtime import TRIAL_EVENTS_VARIABLE, record_event

if TYPE_CHECKING:  # Optuna is imported by the steps that use it, not by every task
    from flywheel.components.steps.tuning_study import InTrialVerdict, TrialOutcome


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
    trials = [
        {"number": trial["number"], "hyperparameters": {**static, **trial["hyperparameters"]}}
        for trial in suggest_round(journal_out, spec, spec.max_parallel_jobs)
    ]
    record_event(
        {"event": "asked", "metric": spec.objective_metric, "trials": trials},
        TRIAL_EVENTS_VARIABLE,
    )
    return trials


def _same_value(left: Any, right: Any) -> bool:
    numbers = (int, float)
    if isinstance(left, numbers) and isinstance(right, numbers):
        return math.isclose(float(left), float(right), rel_tol=1e-9, abs_tol=1e-12)
    return left == right


def trial_of(
    hyperparameters: Mapping[str, Any],
    asked: Sequence[Mapping[str, Any]],
    searched: frozenset[str],
) -> int | None:
    """The number of the first trial in ``asked`` that searched exactly these values, or None.

    A train task knows its hyperparameters, not its trial number, so a trained model is matched
    to its trial by what was searched. KFP's protobuf Struct may have turned an integer into a
    float on the way (``80`` into ``80.0``), so numbers compare by value. Two trials asked with
    the same values trained the same configuration, so either one's model stands for both.
    """
    for trial in asked:
        values = trial["hyperparameters"]
        if all(_same_value(hyperparameters.get(name), values.get(name)) for name in searched):
            return int(trial["number"])
    return None


@dataclass(frozen=True)
class TrialModel:
    """A trained model a record step was handed: its file and the train task's metadata."""

    path: Path
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialCurves:
    """A trial's ``train_model`` ``metrics`` file: its job's name and each metric's
    ``[step, value]`` pairs in log order."""

    job_name: str
    series: Mapping[str, Sequence[Sequence[float]]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> TrialCurves:
        raw = json.loads(path.read_text()) if path.is_file() and path.stat().st_size else {}
        return cls(str(raw.get("job_name", "")), dict(raw.get("series", {})))


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


def _round_models(
    spec: TuningSpec,
    models: Sequence[TrialModel],
    curves: Sequence[TrialCurves],
    asked: Sequence[Mapping[str, Any]],
) -> tuple[dict[int, TrialModel], dict[int, TrialOutcome]]:
    """Each of this round's models and outcomes by trial number: a model is matched to the
    trial that searched its hyperparameters (``trial_of``; unfinished trials first), its objective is the final
    value its job logged, and its series, from its ``metrics`` file (matched by job name), are
    the intermediate values the pruner judges. A model whose task judged it while it trained
    (``pruning`` in its metadata) carries that verdict, to be recorded as it was made."""
    from flywheel.components.steps.tuning_study import outcome_from_metrics

    by_job = {curve.job_name: curve for curve in curves}
    unmatched = list(asked)
    matched: dict[int, TrialModel] = {}
    outcomes: dict[int, TrialOutcome] = {}
    for model in models:
        trained_with = model.metadata.get("hyperparameters", {})
        number = _judged_trial(model.metadata, unmatched)
        if number is None:
            number = trial_of(trained_with, unmatched, spec.tuned)
        if number is None:
            shown = {k: v for k, v in trained_with.items() if k in spec.tuned}
            raise InvalidSpecError(
                "models",
                f"a model trained with {shown} (job {model.metadata.get('job_name')}) matches "
                "no trial the study asked",
            )
        unmatched = [trial for trial in unmatched if int(trial["number"]) != number]
        matched[number] = model
        value = model.metadata.get("metrics", {}).get(spec.objective_metric)
        curve = by_job.get(str(model.metadata.get("job_name")), TrialCurves(""))
        steps = [float(v) for _step, v in curve.series.get(spec.objective_metric, [])]
        outcomes[number] = outcome_from_metrics(
            steps, None if value is None else float(value), _verdict(model.metadata)
        )
    return matched, outcomes


def _judged_trial(metadata: Mapping[str, Any], asked: Sequence[Mapping[str, Any]]) -> int | None:
    """The trial a model's task was judged as (its ``pruning``), when it is one of ``asked``."""
    trial = (metadata.get("pruning") or {}).get("trial")
    if trial is None or int(trial) not in {int(t["number"]) for t in asked}:
        return None
    return int(trial)


def _verdict(metadata: Mapping[str, Any]) -> InTrialVerdict | None:
    """The verdict a trial's own task reached (``train_model``'s ``pruning``), or None when
    nothing judged it while it trained. KFP's Struct hands the step over as a float."""
    from flywheel.components.steps.tuning_study import InTrialVerdict

    pruning = metadata.get("pruning")
    if not pruning:
        return None
    step = pruning.get("pruned_at_step")
    return InTrialVerdict(
        None if step is None else int(step), dict(pruning.get("pruner_attrs") or {})
    )


def _winner_model(
    number: int, matched: Mapping[int, TrialModel], best_in: TrialModel | None
) -> TrialModel:
    """The winning trial's model: this round's, or the one carried on from an earlier round."""
    if number in matched:
        return matched[number]
    carried = (best_in.metadata.get("tuning") or {}) if best_in is not None else {}
    if best_in is None or int(carried.get("trial", -1)) != number:
        raise InvalidSpecError(
            "best_so_far", f"trial {number} is the best, but no step handed its model on"
        )
    return best_in


def record_trials(
    *,
    workload_path: str,
    models: Sequence[TrialModel],
    curves: Sequence[TrialCurves],
    journal_in: Path,
    journal_out: Path,
    best_in: TrialModel | None,
    best_out: Path,
    run: str,
) -> RecordedRound:
    """Tell the journal the round's outcomes and keep the best model so far in ``best_out``.

    A trial recorded before (a retried round) is not told again. The best so far is this
    round's winner if it beats ``best_in``, which is carried on otherwise. Models are matched to
    trials by the values searched (``trial_of``), not by their order, since KFP does not promise
    the order of collected outputs on a cluster.
    """
    from flywheel.components.steps.tuning_study import asked_trials, record_round, trials_table

    spec = tuning_of(load_workload(workload_path))
    copy_journal(journal_in, journal_out)
    matched, outcomes = _round_models(spec, models, curves, asked_trials(journal_out, spec))
    record_round(journal_out, spec, outcomes)
    rows = trials_table(journal_out)
    trials = [
        {
            "number": row.number,
            "state": row.state,
            "hyperparameters": dict(row.hyperparameters),
            "objective": row.objective,
            "best": row.best,
            "pruned_at_step": row.pruned_at_step,
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
    chosen = _winner_model(winner.number, matched, best_in)
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
