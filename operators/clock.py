"""The operator's clock: wall time (shifted in tests), and noticing when it steps.

Status holds wall-clock times. A clock stepped back (NTP correcting a clock that ran fast, a VM
restored from a snapshot) leaves times in status that lie in the future; the decision treats
those as "now" (:mod:`operators.decision`). A poller, though, sleeps until a moment computed on
the old clock; :class:`StepWatch` compares the wall clock with the monotonic one, so that every
policy is woken and decides again on the new clock at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Tests only: a file holding seconds to add to the wall clock, read on every reading, so that a
# test can step a running operator process's clock.
OFFSET_FILE_ENV = "FLYWHEEL_CLOCK_OFFSET_FILE"
# A difference between wall and monotonic time this large, between two checks, is a step; NTP
# slews by far less.
STEP_SECONDS = 2.0
# How often the poller's background task looks at the clock.
CHECK_SECONDS = 1.0


def utc_now() -> datetime:
    return datetime.now(tz=UTC)


def system_clock() -> Callable[[], datetime]:
    """The wall clock in UTC; shifted by the file named by ``$FLYWHEEL_CLOCK_OFFSET_FILE``."""
    path = os.environ.get(OFFSET_FILE_ENV)
    if not path:
        return utc_now
    offset_file = Path(path)

    def shifted() -> datetime:
        try:
            offset = float(offset_file.read_text().strip() or 0)
        except (OSError, ValueError):
            offset = 0.0
        return utc_now() + timedelta(seconds=offset)

    return shifted


class StepWatch:
    """Counts steps of ``clock``: jumps of the wall clock the monotonic clock did not make."""

    def __init__(self, clock: Callable[[], datetime], threshold: float = STEP_SECONDS) -> None:
        self.clock = clock
        self.threshold = threshold
        self.steps = 0
        self._mark: tuple[datetime, float] | None = None

    def check(self) -> bool:
        """Whether the clock stepped since the last check (the first check only marks)."""
        wall, mono = self.clock(), time.monotonic()
        stepped = False
        if self._mark is not None:
            drift = (wall - self._mark[0]).total_seconds() - (mono - self._mark[1])
            stepped = abs(drift) > self.threshold
            self.steps += stepped
        self._mark = (wall, mono)
        return stepped
