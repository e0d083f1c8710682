"""Record a training run in MLflow, and point it at the model version registered from it.

Runs inside the train task, which is where a job's metric series are on every backend (local,
EKS, SageMaker). Tracking never fails training: without ``mlflow``, without a tracking URI, or
with the server unreachable after a few short retries, one line says what was not recorded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

from flywheel.components.tracking.uri import (
    TRACKING_SWITCH_VARIABLE,
    TRACKING_URI_VARIABLE,
    tracking_installed,
    tracking_switched_off,
)

# MLflow's client retries an HTTP call 7 times with a doubling backoff (minutes, for rate limits);
# a training task waits a few seconds at most, then goes on untracked.
_HTTP_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
# MLflow's log_batch limits: 1000 metrics, 100 params and 100 tags per call.
_METRICS_PER_BATCH = 1000
_PARAMS_PER_BATCH = 100
TAG_PREFIX = "flywheel."
# The thread importing mlflow ahead of time (``import_in_background``), if one was started.
_importing: threading.Thread | None = None
# The operating system's reason inside urllib3's message: ``[Errno 111] Connection refused``.
_OS_ERROR = re.compile(r"\[Errno -?\d+\] [^'\")]+")


@dataclass(frozen=True)
class TrainingRecord:
    """What a tracking run holds for one training job (a pipeline's training or a trial)."""

    workload: str
    job_name: str
    compute: str
    hyperparameters: Mapping[str, Any]
    # code_sha256, code_fingerprint, the train and test data digests: what made this model.
    digests: Mapping[str, str]
    series: Mapping[str, Sequence[Sequence[float]]]
    # Metric definitions that matched no line of the job's log.
    unmatched: Sequence[str] = ()
    objective: str = ""
    objective_goal: str = ""
    # Where the model and the reports are: model, output_data, learning_curves.
    links: Mapping[str, str] = field(default_factory=dict)
    # The log step a tuning trial's pruner stopped it at; None when it ran to its end.
    pruned_at_step: int | None = None


def tracking_on() -> bool:
    """Whether this task will track: a tracking URI is set and ``mlflow`` can be imported."""
    return (
        bool(os.environ.get(TRACKING_URI_VARIABLE))
        and not tracking_switched_off()
        and tracking_installed()
    )


def import_in_background() -> None:
    """Start importing MLflow's client in a thread, when this task will track.

    Importing ``mlflow`` takes seconds; started while the training job runs (the task only waits
    on the job's log), it is done by the time the run is recorded. Recording waits for this
    thread first: two threads importing ``mlflow`` at once can see it half-initialised.
    """
    global _importing
    if tracking_on() and _importing is None:
        _importing = threading.Thread(target=_import_client, name="import-mlflow", daemon=True)
        _importing.start()


def _import_client() -> None:
    with contextlib.suppress(Exception):  # the real import, later, reports any problem
        import mlflow.entities
        import mlflow.tracking  # noqa: F401


def _client(log: Callable[[str], None], uri: str = "") -> tuple[Any, str] | None:
    """The MLflow client for ``uri``, else ``MLFLOW_TRACKING_URI``; None (said in one line) when
    tracking is off."""
    uri = uri or os.environ.get(TRACKING_URI_VARIABLE, "")
    if tracking_switched_off():
        log(f"tracking is off: {TRACKING_SWITCH_VARIABLE}=off")
        return None
    if not uri:
        log(f"tracking is off: {TRACKING_URI_VARIABLE} is not set")
        return None
    if not tracking_installed():
        log("tracking is off: mlflow is not installed (pip install 'flywheel-mlops[tracking]')")
        return None
    if _importing is not None:
        _importing.join()
    for name, value in _HTTP_RETRIES.items():
        os.environ.setdefault(name, value)
    # urllib3 warns on every retry; the one line after the last try is enough.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri), uri


def _experiment_id(client: Any, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # another trial created it first
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _tags(record: TrainingRecord) -> dict[str, str]:
    tags = {
        "mlflow.runName": record.job_name,
        f"{TAG_PREFIX}workload": record.workload,
        f"{TAG_PREFIX}job_name": record.job_name,
        f"{TAG_PREFIX}compute": record.compute,
        f"{TAG_PREFIX}objective": record.objective,
        f"{TAG_PREFIX}objective_goal": record.objective_goal,
        f"{TAG_PREFIX}unmatched_metrics": ",".join(record.unmatched),
        f"{TAG_PREFIX}pruned_at_step": ""
        if record.pruned_at_step is None
        else str(record.pruned_at_step),
    }
    tags |= {f"{TAG_PREFIX}link.{name}": uri for name, uri in record.links.items()}
    return {name: value for name, value in tags.items() if value}


def track_training(record: TrainingRecord, log: Callable[[str], None] = print) -> str | None:
    """Record ``record`` as an MLflow run; its id, or None when tracking is off or failed.

    The run is found again by its job name, so a retried task does not record it twice.
    """
    opened = _client(log)
    if opened is None:
        return None
    client, uri = opened
    try:
        from mlflow.entities import Metric, Param

        experiment_id = _experiment_id(client, record.workload)
        existing = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{TAG_PREFIX}job_name` = '{record.job_name}'",
            max_results=1,
        )
        if existing:
            return existing[0].info.run_id
        run = client.create_run(experiment_id, run_name=record.job_name, tags=_tags(record))
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        metrics = [
            Metric(name, float(value), now, int(step))
            for name, points in record.series.items()
            for step, value in points
        ]
        params = [Param(name, str(value)) for name, value in record.hyperparameters.items()]
        params += [Param(f"{TAG_PREFIX}compute", record.compute)]
        params += [Param(f"{TAG_PREFIX}{name}", value) for name, value in record.digests.items()]
        metric_batches = _chunks(metrics, _METRICS_PER_BATCH)
        param_batches = _chunks(params, _PARAMS_PER_BATCH)
        for metric_batch, param_batch in zip_longest(metric_batches, param_batches, fillvalue=[]):
            client.log_batch(run_id, metrics=metric_batch, params=param_batch)
        # A trial its pruner stopped ends as MLflow's stopped runs do: KILLED, not FINISHED.
        client.set_terminated(run_id, "FINISHED" if record.pruned_at_step is None else "KILLED")
    except Exception as error:
        log(f"tracking: {record.job_name} not recorded at {uri}: {_reason(error)}")
        return None
    log(f"tracking: {record.job_name} recorded as MLflow run {run_id} at {uri}")
    return run_id


def link_registered_version(
    run_id: str,
    *,
    model_name: str,
    version: int,
    registry: str,
    pipeline_run_id: str,
    scores: Mapping[str, float],
    tracking_uri: str = "",
    log: Callable[[str], None] = print,
) -> bool:
    """Tag the tracking run with the version registered from it, and log the evaluation's
    ``scores`` on it (the gate's objective among them); False when it could not be.

    ``tracking_uri`` is the store the run was recorded in (``MLFLOW_TRACKING_URI`` when empty).
    """
    opened = _client(log, tracking_uri)
    if opened is None:
        return False
    client, uri = opened
    tags = {
        f"{TAG_PREFIX}model_name": model_name,
        f"{TAG_PREFIX}model_version": str(version),
        f"{TAG_PREFIX}registry": registry,
        f"{TAG_PREFIX}pipeline_run_id": pipeline_run_id,
    }
    try:
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(name, float(value), now, 0) for name, value in scores.items()],
            tags=[RunTag(name, value) for name, value in tags.items() if value],
        )
    except Exception as error:
        log(
            f"tracking: run {run_id} not linked to {model_name} v{version} at {uri}: {_reason(error)}"
        )
        return False
    return True


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _reason(error: Exception) -> str:
    """Why, in a few words: the system's reason for a connection that failed every try (MLflow's
    message repeats the whole URL and retry history), else the message's first line."""
    message = str(error).strip()
    refused = _OS_ERROR.search(message)
    if refused:
        tries = int(_HTTP_RETRIES["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]) + 1
        return f"unreachable after {tries} tries ({refused.group(0)})"
    return (message.splitlines() or [type(error).__name__])[0][:300]
