"""Which attempt of a logical job a step follows, decided from every attempt the service knows.

A job's name is a digest of its request (``naming.py``); a job that ended Failed or Stopped can
never run again under its name, so a retry takes the next attempt's name (``-a2``, ``-a3``...).
Deciding from "the first free name" breaks once attempts are deleted: DeleteTrainingJob frees a
name, so after retention deleted a Failed attempt 1 a retry would find the base name free and
train again, although attempt 2 had Completed. So the step lists every job whose name contains the
base name (``List<Noun>Jobs``), keeps those that are exactly an attempt of it, and:

1. follows a Completed attempt if there is one (its result is the task's), else a running one;
2. otherwise goes on from the highest attempt the service still knows, so no name is reused,
   not even one a deletion freed;
3. counts ``Deleting`` (and ``DeleteFailed``) as gone: never followed, its name never reused.

List is eventually consistent (a job created a moment ago may be missing), so each candidate name
is still described, strongly consistent, before anything is created under it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from botocore.exceptions import ClientError

from flywheel.components.compute.backend import LogSink
from flywheel.components.compute.sagemaker.clients import AwsClients, console_url
from flywheel.components.compute.sagemaker.errors import is_not_found
from flywheel.components.compute.sagemaker.jobs import GONE_STATUSES, JobType
from flywheel.components.compute.sagemaker.naming import MAX_ATTEMPTS, attempt_name
from flywheel.components.compute.sagemaker.throttling import Patience
from flywheel.components.errors import JobFailedError

# Where a step picks up a job: its result (Completed), or the job itself (running).
_FOLLOWABLE = ("Completed", "InProgress")


def attempt_number(base: str, name: str) -> int | None:
    """``1`` for ``base``, ``n`` for ``base-an``; None for any other name that contains ``base``."""
    match = re.fullmatch(rf"{re.escape(base)}(?:-a([1-9][0-9]*))?", name)
    if match is None:
        return None
    return int(match.group(1) or 1)


def describe_or_none(
    clients: AwsClients, job: JobType, name: str, patience: Patience
) -> dict[str, Any] | None:
    """The job's description, or None if the service knows no job of that name."""
    try:
        return patience.call(
            f"Describe{job.noun}Job {name}", lambda: job.describe(clients.sagemaker, name)
        )
    except ClientError as error:
        if is_not_found(error):
            return None
        raise


def known_attempts(
    clients: AwsClients, job: JobType, base: str, patience: Patience
) -> dict[int, str]:
    """Every attempt of ``base`` that ``List<Noun>Jobs`` shows, by number, with its status."""
    found: dict[int, str] = {}
    token: str | None = None
    while True:
        page = patience.call(
            f"List{job.noun}Jobs {base}",
            lambda token=token: job.list_page(clients.sagemaker, base, token),
        )
        for summary in page.get(job.summaries_key, []):
            number = attempt_number(base, summary[job.name_key])
            if number is not None:
                found[number] = summary[job.status_key]
        token = page.get("NextToken")
        if not token:
            return found


def _followed(attempts: Mapping[int, str]) -> int | None:
    for status in _FOLLOWABLE:
        numbers = sorted(n for n, s in attempts.items() if s == status)
        if numbers:
            return numbers[0]
    return None


def _candidates(attempts: Mapping[int, str]) -> Iterator[int]:
    """The attempt to follow if the listing shows one; then from the highest listed attempt on.

    The highest listed attempt is described again, so the log says why it ended (List shows no
    reason) and a listing that lags behind the service is corrected before anything is created.
    """
    followed = _followed(attempts)
    if followed is not None:
        yield followed
    for attempt in range(max(attempts, default=1), MAX_ATTEMPTS + 1):
        if attempt != followed:
            yield attempt


def for_attempt(job: JobType, request: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``request`` under the attempt's ``name``; everything else, checkpoints too, stays.

    Checkpoints belong to the logical job, not to the attempt: a retry after a spot time-out
    resumes from what the attempt before it saved.
    """
    return {**request, job.name_key: name}


def _spent_reason(job: JobType, description: Mapping[str, Any]) -> str:
    return f"{description[job.status_key]}: {job.failure_reason(description)}"


def attempt_to_follow(
    clients: AwsClients,
    job: JobType,
    request: Mapping[str, Any],
    patience: Patience,
    log: LogSink,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The request of the attempt to follow, and its description if it exists already."""
    base = request[job.name_key]
    attempts = known_attempts(clients, job, base, patience)
    for attempt in _candidates(attempts):
        name = attempt_name(base, attempt)
        existing = describe_or_none(clients, job, name, patience)
        if existing is None or existing[job.status_key] in _FOLLOWABLE:
            return for_attempt(job, request, name), existing
        status = existing[job.status_key]
        why = (
            f"is {status} (deleted, its name still taken)"
            if status in GONE_STATUSES
            else f"ended {_spent_reason(job, existing)}"
        )
        log(
            f"[{name}] attempt {attempt} {why}; a retry never reuses it: trying the next "
            f"attempt  {console_url(clients.region, job.console_path, name)}"
        )
    raise JobFailedError(base, f"all {MAX_ATTEMPTS} attempts ended Failed, Stopped or deleted")
