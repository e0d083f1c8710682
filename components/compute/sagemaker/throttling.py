"""Riding out SageMaker's throttling from the first call on, for as long as the step may wait.

SageMaker throttles Describe and List per account, so a busy account is throttled exactly when
many pipelines start together. botocore's own retries give up after ten attempts (about a minute);
a step that then fails has created nothing, and its retry meets the same crowd. So every Describe
and List the launcher makes goes through :class:`Patience`: it asks again after a jittered,
capped back-off until the step's own time-out (``Watch.deadline_seconds``, counted from the
step's start), and only then fails, in one line that says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from botocore.exceptions import ClientError

from flywheel.components.compute.backend import LogSink
from flywheel.components.compute.sagemaker.errors import is_throttling
from flywheel.components.compute.sagemaker.polling import Backoff, Clock
from flywheel.components.errors import FlywheelError

T = TypeVar("T")


class ThrottledTooLongError(FlywheelError):
    """SageMaker throttled a call until the step's time-out."""


@dataclass
class Patience:
    """Asks again while throttled, until ``until`` on ``clock``; one log line per throttled call."""

    clock: Clock
    until: float
    log: LogSink
    backoff: Backoff = field(default_factory=Backoff)
    timeout_seconds: float = 0.0

    def call(self, what: str, call: Callable[[], T]) -> T:
        """``call()``'s result; throttling errors are waited out, any other error is raised."""
        throttles = 0
        while True:
            try:
                return call()
            except ClientError as error:
                if not is_throttling(error):
                    raise
            throttles += 1
            left = self.until - self.clock.now()
            if left <= 0:
                raise ThrottledTooLongError(
                    f"{what}: SageMaker throttled it {throttles} times in a row until the step's "
                    f"time-out ({self.timeout_seconds:.0f}s); nothing more was asked"
                )
            delay = min(left, self.backoff.delay(throttles))
            self.log(f"{what}: throttled by SageMaker ({throttles}); asking again in {delay:.1f}s")
            self.clock.sleep(delay)
