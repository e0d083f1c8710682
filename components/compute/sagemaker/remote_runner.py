"""Create a SageMaker job, or reattach to it, and follow it to the end.

The order of calls is what makes a step safe to retry:

1. Describe the job's deterministic name. If it is running or Completed, a previous attempt of
   this task created it: reattach (or use its result). Never create a second one.
2. If it ended Failed or Stopped, it can never run again under that name: log why it ended and
   move on to the next attempt's name (``<name>-a2``, ``-a3``...), described the same way.
3. At the first name that does not exist yet, create the job, and hand its ARN to ``on_handle``
   at once, before any polling. A SIGTERM during the Create call is held until it returns.
4. Poll on an adaptive schedule, printing each status transition and tailing CloudWatch logs,
   inside a SIGTERM guard that stops the job if the step is cancelled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from flywheel.components.compute.backend import LogSink
from flywheel.components.compute.sagemaker.clients import AwsClients, console_url
from flywheel.components.compute.sagemaker.errors import (
    is_already_exists,
    is_not_found,
    is_throttling,
)
from flywheel.components.compute.sagemaker.execution_context import (
    StepCancelled,
    cancel_on_sigterm,
    uninterrupted,
)
from flywheel.components.compute.sagemaker.jobs import TERMINAL_STATUSES, JobType
from flywheel.components.compute.sagemaker.logs import LogTailer
from flywheel.components.compute.sagemaker.naming import MAX_ATTEMPTS, attempt_name
from flywheel.components.compute.sagemaker.polling import Clock, PollSchedule, SystemClock
from flywheel.components.errors import FlywheelError, JobFailedError

# How long a cancelled step waits to see the job acknowledge StopXJob before exiting.
STOP_WAIT_SECONDS = 30.0
STOP_POLL_SECONDS = 5.0


class StepCancelledError(FlywheelError):
    """The step got SIGTERM; the SageMaker job was asked to stop."""


@dataclass(frozen=True)
class Watch:
    """How to follow a job: the clock, the schedule, and the longest we follow before giving up."""

    clock: Clock = field(default_factory=SystemClock)
    schedule: PollSchedule = field(default_factory=PollSchedule)
    # A safety net above SageMaker's own limits (max runtime, max wait), so the loop is bounded.
    deadline_seconds: float = 29 * 24 * 3600.0


def describe_or_none(clients: AwsClients, job: JobType, name: str) -> dict[str, Any] | None:
    try:
        return job.describe(clients.sagemaker, name)
    except ClientError as error:
        if is_not_found(error):
            return None
        raise


class _Follower:
    """Prints what changed between two descriptions of the same job: one line per transition."""

    def __init__(self, job: JobType, name: str, region: str, log: LogSink) -> None:
        self._job = job
        self._name = name
        self._url = console_url(region, job.console_path, name)
        self._log = log
        self._status: str | None = None
        self._transitions = 0

    def observe(self, description: Mapping[str, Any]) -> None:
        transitions = description.get("SecondaryStatusTransitions", [])
        for transition in transitions[self._transitions :]:
            message = transition.get("StatusMessage", "")
            self._log(f"[{self._name}] {transition['Status']}: {message}  {self._url}")
        self._transitions = max(self._transitions, len(transitions))
        status = description[self._job.status_key]
        if status != self._status and not transitions:
            self._log(f"[{self._name}] {status}  {self._url}")
        self._status = status


# A job in these states can never run again under its name; a retry needs the next attempt.
_SPENT = frozenset({"Failed", "Stopped", "Stopping"})


def _for_attempt(job: JobType, request: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``request`` renamed to ``name``; a checkpoint prefix named after the job moves with it."""
    renamed = {**request, job.name_key: name}
    checkpoint = request.get("CheckpointConfig")
    if checkpoint and name != request[job.name_key]:
        base = checkpoint["S3Uri"].removesuffix(request[job.name_key])
        renamed["CheckpointConfig"] = {**checkpoint, "S3Uri": base + name}
    return renamed


def _spent_reason(job: JobType, description: Mapping[str, Any]) -> str:
    return f"{description[job.status_key]}: {job.failure_reason(description)}"


def _attempt_to_follow(
    clients: AwsClients, job: JobType, request: Mapping[str, Any], log: LogSink
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The request of the first attempt not spent, and its description if it already exists."""
    base = request[job.name_key]
    for attempt in range(1, MAX_ATTEMPTS + 1):
        name = attempt_name(base, attempt)
        existing = describe_or_none(clients, job, name)
        if existing is None or existing[job.status_key] not in _SPENT:
            return _for_attempt(job, request, name), existing
        log(
            f"[{name}] attempt {attempt} ended {_spent_reason(job, existing)}; a retry never "
            f"reuses it: trying attempt {attempt + 1}  "
            f"{console_url(clients.region, job.console_path, name)}"
        )
    raise JobFailedError(base, f"all {MAX_ATTEMPTS} attempts ended Failed or Stopped")


def _create(
    clients: AwsClients, job: JobType, request: Mapping[str, Any], log: LogSink
) -> tuple[str, dict[str, Any] | None]:
    """Create the job; its ARN, and its description if another attempt created it first."""
    name = request[job.name_key]
    url = console_url(clients.region, job.console_path, name)
    try:
        with uninterrupted():
            arn = job.create(clients.sagemaker, request)
    except ClientError as error:
        if not is_already_exists(error):
            raise
        # Another attempt of this task created it between our Describe and Create.
        existing = job.describe(clients.sagemaker, name)
        log(f"[{name}] created concurrently by another attempt: reattaching  {url}")
        return existing[job.arn_key], existing
    log(f"[{name}] created {job.noun.lower()} job {arn}  {url}")
    return arn, None


def _stop(clients: AwsClients, job: JobType, name: str, watch: Watch, log: LogSink) -> None:
    """Ask SageMaker to stop the job and wait briefly for it to say Stopping; never loop."""
    log(f"[{name}] step cancelled: stopping the {job.noun.lower()} job")
    try:
        job.stop(clients.sagemaker, name)
    except ClientError as error:
        # A job that already ended cannot be stopped; that is fine.
        log(f"[{name}] stop request refused: {error}")
        return
    waited = 0.0
    while waited <= STOP_WAIT_SECONDS:
        status = job.describe(clients.sagemaker, name)[job.status_key]
        if status in {"Stopping", *TERMINAL_STATUSES}:
            log(f"[{name}] {status}")
            return
        watch.clock.sleep(STOP_POLL_SECONDS)
        waited += STOP_POLL_SECONDS
    log(f"[{name}] still not stopping after {STOP_WAIT_SECONDS:.0f}s; check the console")


def _outcome(job: JobType, name: str, description: Mapping[str, Any]) -> dict[str, Any]:
    status = description[job.status_key]
    if status == "Failed":
        raise JobFailedError(name, job.failure_reason(description))
    if status == "Stopped":
        raise JobFailedError(
            name, "it was stopped before finishing (from the console, the API or a cancelled run)"
        )
    return dict(description)


def run_job(
    clients: AwsClients,
    job: JobType,
    request: Mapping[str, Any],
    *,
    log: LogSink = print,
    watch: Watch | None = None,
    on_handle: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the job ``request`` describes (or find it) to completion; its final description.

    Raises ``JobFailedError`` with SageMaker's ``FailureReason`` when the job fails or is stopped,
    and ``StepCancelledError`` after stopping the job when the step receives SIGTERM.
    """
    watch = watch or Watch()
    name = request[job.name_key]
    with cancel_on_sigterm():
        try:
            request, description = _attempt_to_follow(clients, job, request, log)
            name = request[job.name_key]
            if description is None:
                arn, description = _create(clients, job, request, log)
            else:
                arn = description[job.arn_key]
                log(
                    f"[{name}] {job.noun.lower()} job exists ({description[job.status_key]}): "
                    f"reattaching  {console_url(clients.region, job.console_path, name)}"
                )
            follower = _Follower(job, name, clients.region, log)
            tailer = LogTailer(clients.logs, job.log_group, name, log)
            if on_handle is not None:
                on_handle(arn)
            started = watch.clock.now()
            while True:
                if description is None:
                    description = _describe_tolerating_throttling(clients, job, name, log)
                if description is not None:
                    follower.observe(description)
                    if description[job.status_key] in TERMINAL_STATUSES:
                        tailer.drain(watch.clock.sleep, watch.schedule.first)
                        return _outcome(job, name, description)
                    tailer.poll()
                age = watch.clock.now() - started
                if age > watch.deadline_seconds:
                    raise JobFailedError(
                        name, f"still running after {age:.0f}s; the launcher stopped following it"
                    )
                watch.clock.sleep(watch.schedule.interval(age))
                description = None
        except StepCancelled:
            _stop(clients, job, name, watch, log)
            raise StepCancelledError(
                f"{job.noun.lower()} job {name}: step cancelled; the job was asked to stop"
            ) from None


def _describe_tolerating_throttling(
    clients: AwsClients, job: JobType, name: str, log: LogSink
) -> dict[str, Any] | None:
    """A description, or None when SageMaker throttled us: the next poll simply asks again."""
    try:
        return job.describe(clients.sagemaker, name)
    except ClientError as error:
        if is_throttling(error):
            log(f"[{name}] throttled by SageMaker; asking again later")
            return None
        raise
