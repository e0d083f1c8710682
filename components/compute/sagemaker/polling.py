"""When to ask SageMaker again: quickly while a job starts, then at a steady, polite pace.

Most failures (a bad image, a missing role permission, a script error) show within the first
minutes, so the schedule starts fast; a long job then settles at one Describe a minute, which is
both SageMaker-friendly and the longest a person waits to see a status change. The schedule is a
pure function of the job's age, so it is tested with plain numbers.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PollSchedule:
    """Seconds to wait before the next Describe, given the job's age in seconds."""

    first: float = 5.0
    ramp: float = 0.5
    ceiling: float = 60.0

    def interval(self, age: float) -> float:
        """``first`` at the start, then half the job's age, never more than ``ceiling``.

        Waiting a fixed share of the age keeps early polls dense and the total count logarithmic
        until the ceiling; the ceiling bounds how late a status change can be noticed.
        """
        return min(self.ceiling, max(self.first, self.ramp * max(0.0, age)))


@dataclass(frozen=True)
class Backoff:
    """Seconds to wait after the n-th throttled call in a row: doubling from ``first`` to ``ceiling``.

    Half of each wait is fixed and half drawn at random ("equal jitter"): steps that were throttled
    together (many pipelines starting at once, one account's Describe quota) spread out instead of
    asking again in step, and none asks again at once.
    """

    first: float = 1.0
    ceiling: float = 30.0

    def delay(self, throttles: int, draw: Callable[[], float] = random.random) -> float:
        step = min(self.ceiling, self.first * 2 ** min(max(throttles, 1) - 1, 30))
        return step / 2 + draw() * step / 2


class Clock(Protocol):
    """Time as the runner sees it; tests and the benchmark pass a fake one."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
