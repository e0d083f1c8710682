"""Read tracked training runs back from MLflow, and line them up for comparison.

The query side of ``components.tracking``: one experiment per workload, one run per training job
or trial, its series as MLflow metric histories. ``Comparison`` is pure: which parameters differ,
which metrics are shared, how the runs rank by their objective.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flywheel.components.errors import InvalidSpecError
from flywheel.components.tracking.record import TAG_PREFIX


@dataclass(frozen=True)
class TrackedRun:
    run_id: str
    name: str
    workload: str
    params: dict[str, str]
    metrics: dict[str, float]
    objective: str = ""
    objective_goal: str = ""
    # ``v<version>`` when a version was registered from it (``<model> v<version>`` when the model
    # is not named after the workload).
    version: str = ""
    unmatched: tuple[str, ...] = ()
    start_time: int = 0

    @property
    def hyperparameters(self) -> dict[str, str]:
        return {k: v for k, v in self.params.items() if not k.startswith(TAG_PREFIX)}


def _tracked(run: Any) -> TrackedRun:
    tags = run.data.tags
    name = tags.get(f"{TAG_PREFIX}model_name", "")
    version = tags.get(f"{TAG_PREFIX}model_version", "")
    unmatched = tags.get(f"{TAG_PREFIX}unmatched_metrics", "")
    return TrackedRun(
        run_id=run.info.run_id,
        name=run.info.run_name or run.info.run_id,
        workload=tags.get(f"{TAG_PREFIX}workload", ""),
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        objective=tags.get(f"{TAG_PREFIX}objective", ""),
        objective_goal=tags.get(f"{TAG_PREFIX}objective_goal", ""),
        version=(
            f"v{version}" if name == tags.get(f"{TAG_PREFIX}workload") else f"{name} v{version}"
        )
        if version
        else "",
        unmatched=tuple(unmatched.split(",")) if unmatched else (),
        start_time=run.info.start_time or 0,
    )


class RunStore:
    """Flywheel's runs in one MLflow store (local SQLite or a server), through MLflow's client."""

    def __init__(self, uri: str) -> None:
        from mlflow.tracking import MlflowClient

        # MLflow logs each schema step of a new SQLite store at INFO: noise around a table.
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        self.uri = uri
        self._client = MlflowClient(uri)

    def runs(self, workload: str | None = None) -> list[TrackedRun]:
        """Every Flywheel run, or a workload's; the newest first."""
        if workload is not None:
            experiment = self._client.get_experiment_by_name(workload)
            experiments = [experiment] if experiment is not None else []
        else:
            experiments = self._client.search_experiments()
        if not experiments:
            return []
        found = self._client.search_runs(
            [e.experiment_id for e in experiments],
            filter_string=f"tags.`{TAG_PREFIX}job_name` != ''",
            order_by=["attributes.start_time DESC"],
            max_results=1000,
        )
        return [_tracked(run) for run in found]

    def find(self, reference: str) -> TrackedRun:
        """A run by its MLflow run id or its name (the training job's)."""
        from mlflow.exceptions import MlflowException

        try:
            return _tracked(self._client.get_run(reference))
        except MlflowException:
            pass
        for run in self.runs():
            if run.name == reference:
                return run
        raise InvalidSpecError("RUN", f"no tracked run has the id or name {reference!r}")

    def series(self, run: TrackedRun, metric: str) -> list[tuple[int, float]]:
        """The metric's values by step, as training logged them."""
        history = self._client.get_metric_history(run.run_id, metric)
        return [(point.step, point.value) for point in sorted(history, key=lambda p: p.step)]


@dataclass(frozen=True)
class Comparison:
    """Runs side by side: best first by the objective, the parameters that differ between them,
    the metrics they share, and what a reader must be warned about."""

    runs: list[TrackedRun]
    differing: list[str]
    metrics: list[str]
    objective: str
    objective_goal: str
    warnings: list[str] = field(default_factory=list)


def _rank_key(run: TrackedRun, objective: str, maximize: bool) -> tuple[int, float]:
    value = run.metrics.get(objective)
    if value is None or math.isnan(value):
        return (1, 0.0)  # runs without the objective go last
    return (0, -value if maximize else value)


def compare(runs: Sequence[TrackedRun]) -> Comparison:
    """Line ``runs`` up (at least one). Runs of different workloads are compared on their shared
    metrics only, with a warning; a metric definition that never matched is named after its run."""
    warnings: list[str] = []
    workloads = sorted({run.workload for run in runs})
    if len(workloads) > 1:
        warnings.append(
            f"these runs are of different workloads ({', '.join(workloads)}): "
            "only the metrics they share are compared"
        )
    logged = [set(run.metrics) for run in runs]
    metrics = sorted(set.intersection(*logged) if len(workloads) > 1 else set.union(*logged))
    names = sorted({name for run in runs for name in run.hyperparameters})
    differing = [name for name in names if len({run.hyperparameters.get(name) for run in runs}) > 1]
    objective = next((run.objective for run in runs if run.objective in metrics), "")
    goal = next((run.objective_goal for run in runs if run.objective == objective), "")
    if not objective:
        warnings.append("no objective shared by these runs: they are not ranked")
    ranked = sorted(runs, key=lambda run: _rank_key(run, objective, goal == "maximize"))
    warnings += [
        f"{run.name}: metric definition(s) {', '.join(run.unmatched)} matched no log line"
        for run in ranked
        if run.unmatched
    ]
    return Comparison(ranked, differing, metrics, objective, goal, warnings)
