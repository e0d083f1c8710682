"""``flywheel run tuning``: check the request, run the tuning pipeline locally, show the trials.

The request is checked as ``flywheel run training`` checks it (``training_run.pipeline_arguments``),
and the workload must declare a ``tuning`` section. The pipeline is built for that workload's
search (its rounds and parallelism are unrolled when the pipeline is built). While it runs, each
trial prints one line as its training finishes; the run ends with every trial, best objective first.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flywheel.components.contract.workload import load_workload
from flywheel.components.errors import InvalidSpecError
from flywheel.components.registry import ModelVersion, open_registry
from flywheel.components.steps.register import as_declared
from flywheel.components.steps.runtime import TRIAL_EVENTS_VARIABLE
from flywheel.components.steps.tuning_rounds import trial_of, tuning_of
from flywheel.pipelines.registry_state import STATES_FILE, RegistryStates, inputs_key
from flywheel.pipelines.requests import TrainingRequest
from flywheel.pipelines.run_record import LocalRun, TaskLog
from flywheel.pipelines.training_run import _state, pipeline_arguments, version_table

TUNING_PIPELINE = "flywheel-tuning"
# How often the live trial lines are read from the events file while the run goes on.
_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class TuningOutcome:
    version: ModelVersion
    promoted: bool
    run: LocalRun
    trials: list[dict[str, Any]]
    objective: str
    # The objective-by-trial plot and its page, when a report folder was given.
    report: Path | None = None


def trial_line(event: Mapping[str, Any]) -> str:
    """One trial as it finishes: ``trial 3: n_estimators=120 max_features=log2 → test_rmse=0.61``,
    or ``… → pruned at step 2 (test_rmse=0.93)`` for a trial its pruner stopped."""
    parameters = " ".join(f"{k}={v}" for k, v in event["hyperparameters"].items())
    value = event.get("objective")
    shown = "no objective (the metric never appeared)" if value is None else f"{value:.4f}"
    ended = f"{event['metric']}={shown}"
    if event.get("pruned_at_step") is not None:
        ended = f"pruned at step {event['pruned_at_step']} ({ended})"
    return f"trial {event['number']}: {parameters} → {ended}"


class _TrialLines:
    """Turns the tasks' events into trial lines: ``suggest_trials`` records the trials it asked,
    each training what it trained with and logged, and a training is its trial's line."""

    def __init__(self, searched: frozenset[str]) -> None:
        self._searched = searched
        self._asked: list[dict[str, Any]] = []
        self._metric = ""

    def line_for(self, event: Mapping[str, Any]) -> str | None:
        if event.get("event") == "asked":
            self._asked.extend(event["trials"])
            self._metric = event["metric"]
            return None
        trained_with = event["hyperparameters"]
        number = trial_of(trained_with, self._asked, self._searched)
        if number is None:  # not a trial of this search
            return None
        self._asked = [trial for trial in self._asked if int(trial["number"]) != number]
        shown = {k: v for k, v in trained_with.items() if k in self._searched}
        value = event["metrics"].get(self._metric)
        return trial_line(
            {
                "number": number,
                "hyperparameters": shown,
                "metric": self._metric,
                "objective": value,
                "pruned_at_step": event.get("pruned_at_step"),
            }
        )


@contextmanager
def _live_trials(events: Path, console: Console, searched: frozenset[str]) -> Iterator[None]:
    """Print a line per trial the tasks record in ``events``, while the run goes on."""
    stop = threading.Event()
    printed = 0
    lines_for = _TrialLines(searched)

    def drain() -> None:
        nonlocal printed
        text = events.read_text() if events.is_file() else ""
        # A line still being written (no newline yet) is read on the next pass.
        complete = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]
        for line in complete[printed:]:
            shown = lines_for.line_for(json.loads(line))
            if shown is not None:
                console.print(shown, highlight=False)
        printed = len(complete)

    def follow() -> None:
        while not stop.wait(_POLL_SECONDS):
            drain()

    watcher = threading.Thread(target=follow, name="flywheel-trials", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        drain()


def run_tuning(
    request: TrainingRequest,
    *,
    verbose: bool = False,
    console: Console | None = None,
    report_dir: Path | None = None,
) -> TuningOutcome:
    """Run the tuning pipeline locally; the registered version and every trial.

    The registry steps are cached by the registry's state, as ``flywheel run training``'s are.
    With ``report_dir``, the objective by trial is drawn there (``report.write_tuning_report``).
    """
    import os

    if request.channels:
        raise InvalidSpecError("--channel", "is not offered by flywheel run tuning")
    workload = load_workload(request.workload)
    search = tuning_of(workload)
    if not workload.scores:
        raise InvalidSpecError(
            "workload", "tuning needs a model that can be scored; this workload is training-only"
        )
    fixed = sorted(search.tuned & set(request.hyperparameters))
    if fixed:
        raise InvalidSpecError(
            f"hyperparameters.{fixed[0]}",
            "is searched (tuning.ranges); a --hp value would be ignored",
        )
    arguments = pipeline_arguments(request, tunes=True)
    arguments.pop("channels")
    model_name = request.model_name or workload.name
    registry = open_registry(arguments["registry"])
    states = RegistryStates(Path(request.pipeline_root) / STATES_FILE)
    inputs = inputs_key(TUNING_PIPELINE, arguments)
    arguments["registry_state"] = states.key_for(inputs, _state(registry, model_name))

    from flywheel.pipelines.local_runner import run_locally
    from flywheel.pipelines.tuning import build_tuning_pipeline, eks_tuning_pipeline

    if request.compute == "eks-gpu":
        from flywheel.components.compute.eks import Placement

        placement = Placement.from_mapping(arguments["compute_config"])
        pipeline = eks_tuning_pipeline(placement, search=search, cache_registry_steps=True)
    else:
        pipeline = build_tuning_pipeline(search=search, cache_registry_steps=True)
    shown_on = console or Console()
    # Bound to the real stream now: during the run, stdout goes to the run's log.
    live = Console(
        file=shown_on.file,
        force_terminal=shown_on.is_terminal,
        width=shown_on.width,
        soft_wrap=True,
    )
    root = Path(request.pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    events = root / "logs" / "tuning-trials.jsonl"
    events.parent.mkdir(exist_ok=True)
    events.unlink(missing_ok=True)
    previous = os.environ.get(TRIAL_EVENTS_VARIABLE)
    os.environ[TRIAL_EVENTS_VARIABLE] = str(events)
    try:
        with _live_trials(events, live, search.tuned):
            run = run_locally(
                pipeline,
                arguments,
                pipeline_root=root,
                cache=request.cache,
                verbose=verbose,
                console=console,
            )
    finally:
        if previous is None:
            os.environ.pop(TRIAL_EVENTS_VARIABLE, None)
        else:
            os.environ[TRIAL_EVENTS_VARIABLE] = previous
    version = registry.get(model_name, int(run.outputs["version"]))
    promoted = _promoted(version, run.tasks)
    outcome = {
        "version": version.version,
        "promoted": promoted,
        "run_dir": str(run.run_dir),
        "log_file": str(run.log_file),
    }
    states.remember(inputs, arguments["registry_state"], _state(registry, model_name), outcome)
    # The rows came through KFP's protobuf Struct, which makes every number a float.
    trials = [
        {
            **row,
            "number": int(row["number"]),
            "hyperparameters": as_declared(
                _searched(row["hyperparameters"], search.tuned), workload.hyperparameters
            ),
        }
        for row in run.outputs["trials"]
    ]
    report = None
    if report_dir is not None:
        from flywheel.pipelines.report import write_tuning_report

        report = write_tuning_report(
            trials,
            model_name=model_name,
            objective=search.objective_metric,
            maximize=search.maximize,
            output_dir=report_dir,
        )[1]
    return TuningOutcome(
        version=version,
        promoted=promoted,
        run=run,
        trials=trials,
        objective=f"{search.objective_metric} ({search.objective_type.lower()})",
        report=report,
    )


def _promoted(version: ModelVersion, tasks: TaskLog) -> bool:
    """Whether this run's promote step made ``version`` champion (``training_run._promoted``;
    the pipeline has a gate per branch, so the step's task name carries a suffix)."""
    ran = [*tasks.succeeded, *tasks.cached]
    promote = any(name.startswith("promote-model") for name in ran)
    return promote and version.stage == "champion"


def _searched(hyperparameters: Mapping[str, Any], searched: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in hyperparameters.items() if k in searched}


def trials_table(trials: Sequence[Mapping[str, Any]], objective: str) -> Table:
    """Every trial, best objective first (failed and pruned ones last), the best marked."""
    table = Table(title=f"trials by {objective}", title_justify="left")
    table.add_column("", style="bold green")
    table.add_column("trial", justify="right")
    names = sorted({name for row in trials for name in row["hyperparameters"]})
    for name in names:
        table.add_column(name)
    table.add_column("objective", justify="right")
    table.add_column("state")
    for row in trials:
        value = row.get("objective")
        table.add_row(
            "best" if row.get("best") else "",
            str(row.get("name") or row["number"]),
            *(str(row["hyperparameters"].get(name, "")) for name in names),
            "" if value is None else f"{value:.4f}",
            _state_shown(row),
        )
    return table


def _state_shown(row: Mapping[str, Any]) -> str:
    """``complete``, ``fail``…; ``pruned at step 2`` for a trial its own task stopped."""
    step = row.get("pruned_at_step")
    if step is not None:
        return f"pruned at step {int(step)}"
    return str(row["state"]).lower()


def summary_table(outcome: TuningOutcome) -> Table:
    """The registered winner, as ``flywheel run training`` ends."""
    tuning = outcome.version.lineage.get("tuning", {})
    tasks = outcome.run.tasks
    table = version_table(
        outcome.version,
        outcome.run,
        gate="promoted" if outcome.promoted else "not promoted",
        tasks=f"{len(tasks.succeeded)} ran, {len(tasks.skipped)} skipped, others from cache",
        details=[
            ("trial", f"{tuning.get('trial')} of {tuning.get('trials')}"),
            ("parameters", json.dumps(tuning.get("parameters", {}))),
        ],
    )
    if outcome.report is not None:
        table.add_row("report", f"{outcome.report} (and .png: the objective by trial)")
    return table
