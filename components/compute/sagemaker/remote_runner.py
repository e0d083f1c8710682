"""Create a SageMaker job, or reattach to it, and follow it to the end.

The order of calls is what makes a step safe to retry:

1. List every attempt of the job's deterministic name (``attempts.py``). If one is Completed or
   running, a previous attempt of this task created it: reattach (or use its result). Never
   create a second one, even when retention has deleted the attempts before it.
2. An attempt that ended Failed or Stopped, or is being deleted, can never run again under its
   name: log why it ended and move on to the next attempt's name (``<name>-a2``, ``-a3``...).
3. At the first name that does not exist yet, create the job, and hand its ARN to ``on_handle``
   at once, before any polling. A SIGTERM during the Create call is held until it returns.
4. Poll on an adaptive schedule, printing each status transition and tailing CloudWatch logs,
   inside a SIGTERM guard that stops the job if the step is cancelled.

Every Describe and List rides out throttling (``throttling.py``) until the step's time-out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from flywheel.components.compute.backend import LogSink
from flywheel.components.compute.sagemaker.attempts import attempt_to_follow, describe_or_none
from flywheel.components.compute.sagemaker.clients import AwsClients, console_url
from flywheel.components.compute.sagemaker.errors import is_already_exists
from flywheel.components.compute.sagemaker.execution_context import (
    StepCancelled,
    cancel_on_sigterm,
    uninterrupted,
)
from flywheel.components.compute.sagemaker.jobs import GONE_STATUSES, TERMINAL_STATUSES, JobType
from flywheel.components.compute.sagemaker.logs import LogTailer
from flywheel.components.compute.sagemaker.polling import Backoff, Clock, PollSchedule, SystemClock
from flywheel.components.compute.sagemaker.throttling import Patience
from flywheel.components.errors import FlywheelError, JobFailedError

# How long a cancelled step waits to see the job acknowledge StopXJob before exiting.
STOP_WAIT_SECONDS = 30.0
STOP_POLL_SECONDS = 5.0
# Statuses after which nothing more happens to the job the step follows.
_ENDED = TERMINAL_STATUSES | GONE_STATUSES


class StepCancelledError(FlywheelError):
    """The step got SIGTERM; the SageMaker job was asked to stop."""


@dataclass(frozen=True)
class Watch:
    """How to follow a job: the clock, the schedules, and the step's time-out.

    ``deadline_seconds``, counted from the step's start, bounds both how long a job is followed
    and how long throttled calls are asked again: a safety net above SageMaker's own limits (max
    runtime, max wait), so every loop ends.
    """

    clock: Clock = field(default_factory=SystemClock)
    schedule: PollSchedule = field(default_factory=PollSchedule)
    backoff: Backoff = field(default_factory=Backoff)
    deadline_seconds: float = 29 * 24 * 3600.0

    def patience(self, log: LogSink) -> Patience:
        """Patience with throttling from now until the step's time-out."""
        return Patience(
            self.clock,
            self.clock.now() + self.deadline_seconds,
            log,
            self.backoff,
            self.deadline_seconds,
        )


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


def _create(
    clients: AwsClients, job: JobType, request: Mapping[str, Any], patience: Patience, log: LogSink
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
        existing = patience.call(
            f"Describe{job.noun}Job {name}", lambda: job.describe(clients.sagemaker, name)
        )
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
        try:
            status = job.describe(clients.sagemaker, name)[job.status_key]
        except ClientError as error:  # throttled or gone: the stop was asked; look once more
            status = str(error)
        if status in {"Stopping", *TERMINAL_STATUSES}:
            log(f"[{name}] {status}")
            return
        watch.clock.sleep(STOP_POLL_SECONDS)
        waited += STOP_POLL_SECONDS
    log(f"[{name}] still not stopping after {STOP_WAIT_SECONDS:.0f}s; check the console")


def _outcome(job: JobType, name: str, description: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Completed job's description; for any other end, the reason as a ``JobFailedError``."""
    status = "deleted" if description is None else description[job.status_key]
    if description is None or status in GONE_STATUSES:
        raise JobFailedError(
            name,
            f"it was deleted ({status}) while this step followed it, by a person or a retention "
            "rule; a retry starts the next attempt",
        )
    if status == "Failed":
        raise JobFailedError(name, job.failure_reason(description))
    if status == "Stopped":
        raise JobFailedError(name, job.stop_reason(description))
    return dict(description)


def _reattach_line(clients: AwsClients, job: JobType, description: Mapping[str, Any]) -> str:
    name = description[job.name_key]
    return (
        f"[{name}] {job.noun.lower()} job exists ({description[job.status_key]}): "
        f"reattaching  {console_url(clients.region, job.console_path, name)}"
    )


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

    Raises ``JobFailedError`` with SageMaker's ``FailureReason`` (or stop reason) when the job
    fails, is stopped or is deleted, ``ThrottledTooLongError`` when SageMaker throttles until the
    step's time-out, and ``StepCancelledError`` after stopping the job on SIGTERM.
    """
    watch = watch or Watch()
    patience = watch.patience(log)
    name = request[job.name_key]
    with cancel_on_sigterm():
        try:
            request, description = attempt_to_follow(clients, job, request, patience, log)
            name = request[job.name_key]
            if description is None:
                arn, description = _create(clients, job, request, patience, log)
            else:
                arn = description[job.arn_key]
                log(_reattach_line(clients, job, description))
            follower = _Follower(job, name, clients.region, log)
            tailer = LogTailer(clients.logs, job.log_group, job.log_stream_prefix(name), log)
            if on_handle is not None:
                on_handle(arn)
            started = watch.clock.now()
            while True:
                description = description or describe_or_none(clients, job, name, patience)
                if description is not None:
                    follower.observe(description)
                if description is None or description[job.status_key] in _ENDED:
                    tailer.drain(watch.clock.sleep, watch.schedule.first)
                    return _outcome(job, name, description)
                tailer.poll()
                age = watch.clock.now() - started
                if watch.clock.now() >= patience.until:
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
