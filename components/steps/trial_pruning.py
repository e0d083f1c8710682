"""Early stopping that stops a tuning trial while it trains, as Katib stops one.

Katib's metrics collector reads a trial's objective from its log while it runs, and its early
stopping rule, computed from the completed trials, stops the trial's job once the rule is broken.
Here the train step follows its job's log: each new value of the tuning objective (read by the
workload's metric definitions, as ``MetricCollector`` reads them) is reported to the round's study,
on a private copy of its journal, and the study's pruner is asked (``tuning_study.RunningTrial``).
When the pruner says stop, the log sink raises :class:`TrialPruned`, a ``StopJob``: the local and
EKS GPU backends stop the job's processes, and the train step ends with the series up to the stop
and a model that says it was pruned, which ``record_trials`` records as it was decided.

Only local and EKS GPU trials are judged: on SageMaker, Automatic Model Tuning stops its own
training jobs (``tune_on_sagemaker``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.components.compute.backend import LogSink, StopJob
from flywheel.components.contract.metrics import MetricCollector
from flywheel.components.contract.workload import Workload
from flywheel.components.errors import InvalidSpecError

# Where a trial can be stopped by its own step: the backends that run the job in the step's
# process tree (the local machine, the EKS task pod).
STOPPABLE_COMPUTE = ("local", "eks-gpu")


class TrialPruned(StopJob):
    """The pruner stopped the trial at ``step`` of the log, where the objective was ``value``."""

    def __init__(self, step: int, value: float) -> None:
        self.step = step
        self.value = value
        super().__init__(f"pruned at step {step}")


@dataclass(frozen=True)
class Pruning:
    """How the trial was judged while it trained, as its model's metadata carries it to
    ``record_trials``: its number, the log step it was pruned at (None: it ran to its end), and
    what the pruner wrote on the trial."""

    trial: int
    pruned_at_step: int | None
    pruner_attrs: Mapping[str, Any] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "pruned_at_step": self.pruned_at_step,
            "pruner_attrs": dict(self.pruner_attrs),
        }


class TrialJudge:
    """Follows a trial's log, reporting each new value of the objective to the round's study and
    stopping the trial (:class:`TrialPruned`) when the pruner says so.

    ``collector`` holds every metric's series as the log showed it, up to the stop: what the
    train step outputs for a stopped job, which returns no result of its own.
    """

    def __init__(
        self, workload: Workload, study_path: Path, trial_number: int, scratch: Path
    ) -> None:
        from flywheel.components.steps.tuning_rounds import copy_journal, tuning_of
        from flywheel.components.steps.tuning_study import RunningTrial

        spec = tuning_of(workload)
        private = scratch / "study.journal"
        # The round's journal is the suggest task's output, read by every trial of the round: each
        # judges on its own copy, so the artifact stays as the round asked.
        copy_journal(study_path, private)
        self._trial = RunningTrial(private, spec, trial_number)
        self._number = trial_number
        self._objective = spec.objective_metric
        self.collector = MetricCollector(workload.metric_definitions)
        self.pruned: TrialPruned | None = None

    def sink(self, log: LogSink) -> LogSink:
        """``log``, with each line judged after it is shown."""

        def judged(line: str) -> None:
            log(line)
            self.observe(line)

        return judged

    def observe(self, line: str) -> None:
        """Read ``line``; report a new objective value and raise ``TrialPruned`` if it is stopped."""
        series = self.collector.series.get(self._objective, [])
        seen = len(series)
        self.collector.observe(line)
        for step, value in self.collector.series.get(self._objective, [])[seen:]:
            if self._trial.should_stop(value):
                self.pruned = TrialPruned(step, value)
                raise self.pruned

    def pruning(self) -> Pruning:
        """The verdict, for the model's metadata."""
        step = None if self.pruned is None else self.pruned.step
        verdict = self._trial.verdict(step)
        return Pruning(self._number, step, verdict.pruner_attrs)


def judge_for(
    workload: Workload, compute: str, study_path: Path, trial_number: int, scratch: Path
) -> TrialJudge | None:
    """The judge of a trial handed its round's study; None when the search stops no trial early
    (no pruner: ``early_stopping: Off``, not Hyperband). Refused, naming the field, on compute
    that this step cannot stop, and for a workload that searches nothing."""
    if compute not in STOPPABLE_COMPUTE:
        raise InvalidSpecError(
            "study",
            f"a trial is stopped early on {' or '.join(STOPPABLE_COMPUTE)}, not {compute}; "
            "on SageMaker, tune_on_sagemaker's tuning job stops its own trials",
        )
    if workload.tuning is None:
        raise InvalidSpecError(
            "study", f"the workload {workload.name!r} has no tuning section to judge a trial by"
        )
    if not workload.tuning.prunes:
        return None
    return TrialJudge(workload, study_path, trial_number, scratch)
