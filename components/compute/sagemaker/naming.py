"""Deterministic SageMaker resource names: the same run, task and spec always give the same name.

That is what makes a retry safe: "a job with this name exists" means "this task already launched
it", so the launcher reattaches instead of creating a duplicate (kubeflow/pipelines#7040).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from flywheel.components.errors import InvalidSpecError

MAX_NAME_LENGTH = 63
DIGEST_LENGTH = 10
# Job names keep room for an attempt suffix (``-a2`` ... ``-a99``): see :func:`attempt_name`.
MAX_ATTEMPTS = 99
_ATTEMPT_ROOM = len(f"-a{MAX_ATTEMPTS}")
# SageMaker's rule for job, model, endpoint and model package group names.
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def spec_digest(payload: Mapping[str, Any]) -> str:
    """A short digest of a request: key order and whitespace do not change it."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:DIGEST_LENGTH]


def _slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-zA-Z0-9]", "-", text)).strip("-").lower()


def resource_name(run_id: str, task: str, payload: Mapping[str, Any]) -> str:
    """``<task>-<run>-<digest>``, cut to 59 characters without ever cutting the digest.

    The digest covers the run id and task as well as the payload, so two runs whose slugs
    collide after cutting still get different names.
    """
    digest = spec_digest({"run": run_id, "task": task, "spec": payload})
    readable = "-".join(part for part in (_slug(task), _slug(run_id)) if part)
    room = MAX_NAME_LENGTH - _ATTEMPT_ROOM - DIGEST_LENGTH - 1
    prefix = readable[:room].rstrip("-")
    return f"{prefix}-{digest}" if prefix else f"job-{digest}"


def attempt_name(name: str, attempt: int) -> str:
    """The job name of the ``attempt``-th try of one task: ``name``, then ``name-a2``, ``name-a3``...

    A job that ended Failed or Stopped can never run again under its name, so a retry needs a new
    one; numbering keeps it deterministic, so every retry finds the attempts before it.
    """
    if not 1 <= attempt <= MAX_ATTEMPTS:
        raise ValueError(f"attempt {attempt} is outside 1-{MAX_ATTEMPTS}")
    return name if attempt == 1 else f"{name}-a{attempt}"


def validate_name(field: str, name: str) -> str:
    """Refuse a name SageMaker would refuse, before any call is made."""
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidSpecError(field, f"{name!r} is {len(name)} characters; the limit is 63")
    if not NAME_PATTERN.match(name):
        raise InvalidSpecError(
            field, f"{name!r} must be letters, digits and hyphens, starting with a letter or digit"
        )
    return name
