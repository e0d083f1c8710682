"""Tuning locally and on EKS: Optuna suggests each round's trials, KFP runs them.

The study lives in Optuna's journal file (``JournalStorage`` over ``JournalFileBackend``), kept
as a KFP artifact between rounds: a round's task copies the previous journal to its output and
calls these functions on it. Everything the search knows is in that file, so a retried round
resumes from it instead of starting over:

- :func:`suggest_round` first hands back the trials a killed round asked for and never finished
  (still ``RUNNING`` in the journal), and asks new ones only to fill the round; finished trials
  are never suggested again, and the whole search never passes ``max_jobs``;
- :func:`record_round` tells each trial its result once: a trial already finished is skipped, so
  a retried round does not tell twice.

The strategies are Katib's, which is the anchor for tuning on Kubernetes, and SageMaker's:

==============  =====================================  ======================================
``strategy``    Optuna                                 Katib ``algorithmName``
==============  =====================================  ======================================
Bayesian        ``TPESampler`` (constant liar)         ``tpe``
Random          ``RandomSampler``                      ``random``
Grid            each combination enqueued, in order    ``grid``
Hyperband       ``TPESampler`` + ``HyperbandPruner``   ``hyperband``
==============  =====================================  ======================================

Katib's other Bayesian algorithm, ``bayesianoptimization``, is a Gaussian process; TPE is the
one Katib and Optuna share (Optuna's default sampler).

Grid enqueues every combination of the categorical ranges, in the order they are declared, one
per trial: Optuna's own ``GridSampler`` ends its study with ``Study.stop()``, which only works
inside ``Study.optimize``, and rounds ask and tell instead.

``early_stopping: Auto`` is a ``MedianPruner``: Katib's ``medianstop`` early stopping, and the
rule SageMaker documents for its own Auto (a trial whose objective is worse than the median of
the earlier trials' running averages at the same step is stopped). As Katib's ``medianstop``,
it judges nothing until 3 trials have finished (its ``min_trials_required``).

With a pruner (``Auto``, Hyperband), a trial is judged while it trains: its ``train_model`` task
is handed the round's journal and its trial number, and :class:`RunningTrial`, on a private copy,
reports each value of the objective as the log shows it and asks the pruner, as Katib's
``medianstop`` judges a running trial against the completed ones; the job is stopped when the
pruner says so. The round's other trials are other tasks with their own copies, so a trial is
judged against the trials finished in earlier rounds, never against its own round's.
:func:`record_round` then records that verdict as it was made (:class:`InTrialVerdict`). A trial
trained without the journal is judged when its round is recorded, from its whole series.

Samplers and pruners are not stored in the journal, so each call builds them again from the spec.
A seeded sampler would then draw the same "random" points every round; its seed is therefore the
spec's ``random_seed`` combined with the number of trials so far: deterministic for a given
journal, different from round to round.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from flywheel.components.contract.tuning import ParameterRange, TuningSpec
from flywheel.components.errors import InvalidSpecError

STUDY_NAME = "flywheel-tuning"
# The user attributes each trial carries: the hyperparameters as the script takes them, so the
# journal alone answers "what did trial 7 run with" (reverse-log ranges are sampled as 1 - x).
HYPERPARAMETERS_ATTR = "hyperparameters"
SEARCH_ATTR = "search"
# A trial its own task stopped: the step of the log (the objective's line) it was stopped at.
PRUNED_AT_STEP_ATTR = "pruned_at_step"
# Auto scaling: SageMaker does not publish its rule; ours searches on a log scale a positive range
# that spans at least two orders of magnitude, where a linear scale would almost never try the
# small end, and linearly otherwise.
AUTO_LOG_SPAN = 100.0
# Katib's medianstop default: no trial is stopped before this many have finished.
KATIB_MEDIANSTOP_MIN_TRIALS = 3
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class InTrialVerdict:
    """What the pruner decided while the trial trained (:class:`RunningTrial`): the step of the
    log it stopped the trial at (None: it let the trial run to its end), and what the pruner wrote
    on the trial meanwhile (Hyperband's rung values), which later trials are judged against."""

    pruned_at_step: int | None
    pruner_attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialOutcome:
    """What a trial's training job reported: the objective's final value (None when the metric
    never appeared, so the trial failed) and its values step by step, for pruning; ``verdict``
    when the trial was judged while it trained, to be recorded as it was made."""

    objective: float | None
    intermediate: tuple[float, ...] = ()
    verdict: InTrialVerdict | None = None

    @classmethod
    def of(cls, raw: TrialOutcome | Mapping[str, Any] | float | None) -> TrialOutcome:
        """Accept an outcome, a ``{"objective": ..., "intermediate": [...]}`` mapping (as KFP
        passes it) or a bare value."""
        if isinstance(raw, TrialOutcome):
            return raw
        if isinstance(raw, Mapping):
            steps = tuple(float(v) for v in raw.get("intermediate", ()))
            return cls(_finite(raw.get("objective")), steps)
        return cls(_finite(raw))


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _storage(journal_path: Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(journal_path)))


def _search_digest(spec: TuningSpec) -> str:
    canonical = json.dumps(
        {
            "objective": [spec.objective_metric, spec.objective_type],
            "strategy": spec.strategy,
            "ranges": [r.__dict__ for r in spec.ranges],
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def is_log_scale(parameter: ParameterRange) -> bool:
    """Whether ``parameter`` is searched on a log scale (``Logarithmic``, or ``Auto`` over a
    positive range spanning two orders of magnitude)."""
    if parameter.scaling == "Logarithmic":
        return True
    return (
        parameter.scaling == "Auto"
        and parameter.min > 0
        and parameter.max / parameter.min >= AUTO_LOG_SPAN
    )


def _reverse_log_name(name: str) -> str:
    return f"{name}:1-x"


def _suggest(trial: optuna.Trial, parameter: ParameterRange) -> Any:
    """One hyperparameter's value for ``trial``, on the range's scale."""
    name = parameter.name
    if parameter.type == "categorical":
        return trial.suggest_categorical(name, list(parameter.values))
    if parameter.type == "integer":
        return trial.suggest_int(
            name, int(parameter.min), int(parameter.max), log=is_log_scale(parameter)
        )
    if parameter.scaling == "ReverseLogarithmic":
        # Dense near 1, as SageMaker's reverse-log scale: 1 - x on a log scale between 1 - max
        # and 1 - min (the spec holds 0 <= min < max < 1, so both are positive).
        distance = trial.suggest_float(
            _reverse_log_name(name), 1.0 - parameter.max, 1.0 - parameter.min, log=True
        )
        return 1.0 - distance
    return trial.suggest_float(name, parameter.min, parameter.max, log=is_log_scale(parameter))


def _sampler(spec: TuningSpec, trials_so_far: int) -> optuna.samplers.BaseSampler:
    seed = None if spec.random_seed is None else spec.random_seed * 100_003 + trials_so_far
    if spec.strategy in ("Random", "Grid"):  # Grid's trials are enqueued: nothing is sampled
        return optuna.samplers.RandomSampler(seed=seed)
    # Bayesian, and Hyperband's sampler: TPE; the constant liar keeps the trials of one round
    # (asked together, before any is told) from piling onto one point.
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def _pruner(spec: TuningSpec) -> optuna.pruners.BasePruner:
    if spec.strategy == "Hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=spec.min_resource or 1, max_resource=spec.max_resource or "auto"
        )
    if spec.early_stopping == "Auto":
        return optuna.pruners.MedianPruner(n_startup_trials=KATIB_MEDIANSTOP_MIN_TRIALS)
    return optuna.pruners.NopPruner()


def _study(journal_path: Path, spec: TuningSpec) -> optuna.Study:
    """The study in ``journal_path`` (created on the first round), refusing another search's."""
    storage = _storage(journal_path)
    trials_so_far = 0
    if storage.get_all_studies():
        trials_so_far = len(storage.get_all_trials(storage.get_study_id_from_name(STUDY_NAME)))
    study = optuna.create_study(
        storage=storage,
        study_name=STUDY_NAME,
        direction="maximize" if spec.maximize else "minimize",
        sampler=_sampler(spec, trials_so_far),
        pruner=_pruner(spec),
        load_if_exists=True,
    )
    digest = _search_digest(spec)
    recorded = study.user_attrs.get(SEARCH_ATTR)
    if recorded is None:
        study.set_user_attr(SEARCH_ATTR, digest)
    elif recorded != digest:
        raise InvalidSpecError(
            "tuning",
            f"the journal {journal_path} holds another search (objective, strategy or ranges "
            "changed); start from an empty journal",
        )
    return study


def _grid_points(spec: TuningSpec) -> list[dict[str, Any]]:
    names = [r.name for r in spec.ranges]
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(r.values for r in spec.ranges))
    ]


def _enqueue_next_grid_point(study: optuna.Study, spec: TuningSpec) -> None:
    """Queue the first combination no trial has taken yet, so the next ``ask`` runs it."""
    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials):
        return  # queued before a kill: ask takes it first
    taken = [t.params for t in trials]
    for point in _grid_points(spec):
        if point not in taken:
            study.enqueue_trial(point)
            return


def _suggestion(trial: FrozenTrial) -> dict[str, Any]:
    return {"number": trial.number, "hyperparameters": dict(trial.user_attrs[HYPERPARAMETERS_ATTR])}


def asked_trials(journal_path: Path, spec: TuningSpec) -> list[dict[str, Any]]:
    """Every trial asked, ``{"number", "hyperparameters"}`` each with its searched values only,
    the unfinished (``RUNNING``) ones first: what a round's trained models are matched to. The
    finished ones come after them for a retried record step, whose journal already told them."""
    trials = _study(Path(journal_path), spec).get_trials(deepcopy=False)
    running = [t for t in trials if t.state == TrialState.RUNNING]
    return [_suggestion(t) for t in [*running, *(t for t in trials if t not in running)]]


def suggest_round(journal_path: Path, spec: TuningSpec, round_size: int) -> list[dict[str, Any]]:
    """The next round's trials, each ``{"number": n, "hyperparameters": {...}}``.

    Trials asked before and never finished (a killed round) come first and are not asked again;
    new trials fill the round up to ``round_size``, never past ``max_jobs`` in all. An empty list
    means the search is done.
    """
    if isinstance(round_size, bool) or not isinstance(round_size, int) or round_size < 1:
        raise InvalidSpecError(
            "round_size", f"must be a whole number of 1 or more, got {round_size!r}"
        )
    study = _study(Path(journal_path), spec)
    trials = study.get_trials(deepcopy=False)
    pending = [t for t in trials if t.state == TrialState.RUNNING][:round_size]
    room = min(round_size - len(pending), spec.max_jobs - len(trials))
    suggestions = [_suggestion(t) for t in pending]
    for _ in range(max(room, 0)):
        if spec.strategy == "Grid":
            _enqueue_next_grid_point(study, spec)
        trial = study.ask()
        values = {parameter.name: _suggest(trial, parameter) for parameter in spec.ranges}
        trial.set_user_attr(HYPERPARAMETERS_ATTR, values)
        suggestions.append({"number": trial.number, "hyperparameters": values})
    return suggestions


def _tell(study: optuna.Study, trial: FrozenTrial, outcome: TrialOutcome) -> TrialState:
    """Tell the study how ``trial`` ended. A verdict its pruner gave while it trained is recorded
    as it was made, never judged again: the round's other trials, recorded beside it, were not
    there to compare with. A trial trained without the journal is judged here, step by step."""
    verdict = outcome.verdict
    if verdict is None and outcome.objective is None:
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        return TrialState.FAIL
    live = optuna.Trial(study, trial._trial_id)
    for step, value in enumerate(outcome.intermediate):
        if step not in trial.intermediate_values:
            live.report(value, step)
        if verdict is None and live.should_prune():
            # The trial has run to its end already; pruning it here tells the sampler and the
            # pruner what a live stop would have.
            study.tell(trial.number, state=TrialState.PRUNED, skip_if_finished=True)
            return TrialState.PRUNED
    if verdict is not None:
        for key, value in verdict.pruner_attrs.items():
            live.storage.set_trial_system_attr(trial._trial_id, key, value)
        if verdict.pruned_at_step is not None:
            live.set_user_attr(PRUNED_AT_STEP_ATTR, verdict.pruned_at_step)
            study.tell(trial.number, state=TrialState.PRUNED, skip_if_finished=True)
            return TrialState.PRUNED
        if outcome.objective is None:
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            return TrialState.FAIL
    study.tell(trial.number, outcome.objective, skip_if_finished=True)
    return TrialState.COMPLETE


class RunningTrial:
    """A trial its round asked, still ``RUNNING`` in ``journal_path`` (a private copy of the
    round's journal), told its objective value by value while it trains, the pruner asked after
    each: the in-trial half of early stopping.

    Its step is the value's place in the objective's series (0 for the first), as
    :func:`record_round` counts it, so both halves report the same steps.
    """

    def __init__(self, journal_path: Path, spec: TuningSpec, number: int) -> None:
        study = _study(Path(journal_path), spec)
        trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
        if trial is None or trial.state != TrialState.RUNNING:
            held = "never asked" if trial is None else trial.state.name
            raise InvalidSpecError(
                "trial_number",
                f"trial {number} is not running in the study ({held}); pass the number "
                "suggest_trials gave the trial",
            )
        self._trial = optuna.Trial(study, trial._trial_id)
        self._attrs_before = dict(trial.system_attrs)
        self.reported = 0

    def should_stop(self, value: float) -> bool:
        """Report the objective's next value; whether the pruner stops the trial there."""
        self._trial.report(value, self.reported)
        self.reported += 1
        return self._trial.should_prune()

    def verdict(self, pruned_at_step: int | None) -> InTrialVerdict:
        """The verdict to record: the step it was stopped at, and what the pruner wrote."""
        attrs = self._trial.storage.get_trial(self._trial._trial_id).system_attrs
        written = {k: v for k, v in attrs.items() if self._attrs_before.get(k) != v}
        return InTrialVerdict(pruned_at_step, written)


def record_round(
    journal_path: Path,
    spec: TuningSpec,
    results: Mapping[int | str, TrialOutcome | Mapping[str, Any] | float | None],
) -> dict[int, str]:
    """Tell each trial of ``results`` (by trial number) its outcome; the state each one ended in.

    With ``early_stopping: Auto`` or Hyperband, each step's value is reported first; a trial
    judged while it trained is recorded as its verdict says, any other is pruned where the pruner
    says so now. A trial that is already finished is skipped, so telling a
    retried round again changes nothing; a number the study never asked is refused.
    """
    study = _study(Path(journal_path), spec)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    numbers = {int(key): TrialOutcome.of(value) for key, value in results.items()}
    unknown = sorted(set(numbers) - set(by_number))
    if unknown:
        raise InvalidSpecError("results", f"the study never asked trial {unknown[0]}")
    ended: dict[int, str] = {}
    for number, outcome in sorted(numbers.items()):
        trial = by_number[number]
        if trial.state in _FINISHED:
            ended[number] = trial.state.name
            continue
        ended[number] = _tell(study, trial, outcome).name
    return ended


@dataclass(frozen=True)
class TrialRow:
    """One line of the trial table."""

    number: int
    state: str
    hyperparameters: Mapping[str, Any]
    objective: float | None
    best: bool
    # The step of the log a pruned trial's own task stopped it at (None otherwise).
    pruned_at_step: int | None = None


def _load(journal_path: Path) -> optuna.Study:
    return optuna.load_study(study_name=STUDY_NAME, storage=_storage(Path(journal_path)))


def trials_table(journal_path: Path) -> list[TrialRow]:
    """Every trial, best objective first (failed, pruned and unfinished ones last), the best
    marked: what ``flywheel run tuning`` prints at the end."""
    study = _load(journal_path)
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    trials = study.get_trials(deepcopy=False)
    complete = sorted(
        (t for t in trials if t.state == TrialState.COMPLETE),
        key=lambda t: (-t.value if maximize else t.value, t.number),
    )
    rest = sorted((t for t in trials if t.state != TrialState.COMPLETE), key=lambda t: t.number)
    return [
        TrialRow(
            number=t.number,
            state=t.state.name,
            hyperparameters=dict(t.user_attrs.get(HYPERPARAMETERS_ATTR, {})),
            objective=t.value if t.state == TrialState.COMPLETE else None,
            best=index == 0 and t.state == TrialState.COMPLETE,
            pruned_at_step=t.user_attrs.get(PRUNED_AT_STEP_ATTR),
        )
        for index, t in enumerate([*complete, *rest])
    ]


def best_trial(journal_path: Path) -> TrialRow | None:
    """The completed trial with the best objective, or None before any has completed."""
    rows = trials_table(journal_path)
    return rows[0] if rows and rows[0].best else None


def outcome_from_metrics(
    series: Sequence[float],
    objective: float | None = None,
    verdict: InTrialVerdict | None = None,
) -> TrialOutcome:
    """A trial's outcome from the objective metric's values in log order (what the metric
    definition's regex read, line by line): the last is the final value, as on SageMaker."""
    values = tuple(float(v) for v in series if math.isfinite(float(v)))
    final = objective if objective is not None else (values[-1] if values else None)
    return TrialOutcome(_finite(final), values, verdict)
