"""Errors people read: each says which field or job failed and what is allowed instead."""

from __future__ import annotations


class FlywheelError(Exception):
    """Base class for errors Flywheel reports as one line, without a traceback."""


class InvalidSpecError(FlywheelError, ValueError):
    """A field of a spec, a config file or a command-line option has a value we cannot use."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class JobFailedError(FlywheelError):
    """A training or transform job ran and failed; the message is the job's own reason."""

    def __init__(self, job_name: str, reason: str) -> None:
        super().__init__(f"job {job_name} failed: {reason}")
        self.job_name = job_name
        self.reason = reason


class RegistryError(FlywheelError):
    """A registry operation could not be done; nothing was changed."""
