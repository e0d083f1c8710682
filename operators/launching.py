"""KFP calls of the event handler, each in a task of its own: a hung KFP never holds a decision.

kopf hands one object's events to its handler one at a time. A create the handler waited for
would hold every later change of that policy (a new nonce, a breach) for as long as KFP takes.
So each run key has at most one create (or lookup, or terminate) in flight, in a task; the
handler decides without waiting, and the task's end wakes a new decision, which writes the run's
id from :meth:`Launches.take`.

Refused creates (KFP answered 4xx: a bad parameter, a service account KFP may not use, a version
that is gone) are not retried every tick as if they were about to work: they back off,
doubling up to ten minutes, and a change of the spec retries at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import urllib3

from flywheel.operators.decision import parse_ts, ts

log = logging.getLogger(__name__)
REFUSED_FIRST_RETRY_SECONDS = 10.0
REFUSED_MAX_RETRY_SECONDS = 600.0
# HTTP answers that mean "not now", not "never like this".
TRANSIENT_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class Outcome:
    """How a create (or a lookup of a replaced run) ended."""

    run_id: str | None = None
    created: bool = False
    error: BaseException | None = None
    policy: dict[str, Any] | None = None  # the policy as read right before the create


class Launches:
    """The KFP calls in flight, one task per key (a policy uid and a run key or run id)."""

    def __init__(self) -> None:
        self._tasks: dict[Hashable, asyncio.Task[Outcome]] = {}
        self._done: dict[Hashable, Outcome] = {}
        # The last create error recorded per key, as status says it (see :func:`launch_error`).
        self.errors: dict[Hashable, dict[str, Any]] = {}

    def busy(self, key: Hashable) -> bool:
        return key in self._tasks

    def start(
        self,
        key: Hashable,
        work: Callable[[], Awaitable[Outcome]],
        then: Callable[[Outcome], Awaitable[None]] | None = None,
        keep: bool = True,
    ) -> None:
        """Run ``work`` unless a call for ``key`` is in flight; keep its outcome for
        :meth:`take` (unless not ``keep``), then call ``then(outcome)``."""
        if key in self._tasks:
            return

        async def run() -> Outcome:
            try:
                outcome = await work()
            except Exception as exc:  # kept for the next decision to report
                outcome = Outcome(error=exc)
            if keep:
                self._done[key] = outcome
            self._tasks.pop(key, None)
            if then is not None:
                try:
                    await then(outcome)
                except Exception:
                    log.exception("Deciding again after the KFP call for %s failed", key)
            return outcome

        self._done.pop(key, None)
        self._tasks[key] = asyncio.get_running_loop().create_task(run())

    async def wait(self, uid: str) -> None:
        """Until no call of the policy ``uid`` is in flight (keys start with its uid)."""
        running = [t for k, t in self._tasks.items() if isinstance(k, tuple) and k[0] == uid]
        await asyncio.gather(*(asyncio.shield(t) for t in running), return_exceptions=True)

    def waiting(self, key: Hashable) -> bool:
        """Whether the outcome for ``key`` is there and not taken yet."""
        return key in self._done

    def take(self, key: Hashable) -> Outcome | None:
        """The outcome of the finished call for ``key``, once; ``None`` while none finished."""
        return self._done.pop(key, None)

    def forget(self, uid: str) -> None:
        """Drop what is kept for a deleted policy (keys are tuples that start with its uid)."""
        for store in (self._done, self._tasks, self.errors):
            for key in [k for k in store if isinstance(k, tuple) and k[0] == uid]:
                store.pop(key, None)


def refused(exc: BaseException) -> bool:
    """Whether KFP answered the create with a client error: trying again unchanged will not help."""
    status = getattr(exc, "status", None)
    return isinstance(status, int) and 400 <= status < 500 and status not in TRANSIENT_STATUSES


def unreachable(exc: BaseException) -> bool:
    return isinstance(exc, OSError | TimeoutError | urllib3.exceptions.HTTPError)


def launch_error(
    exc: BaseException,
    message: str,
    now: datetime,
    generation: int,
    previous: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """What status says about a failed create: why, when, and for a refusal when to try again.

    ``KfpRefused`` (4xx) backs off; ``KfpUnreachable`` (no answer, a timeout) and
    ``LaunchFailed`` (5xx and the rest) are retried every tick.
    """
    error: dict[str, Any] = {"message": message, "time": ts(now), "generation": generation}
    if refused(exc):
        same = (previous or {}).get("reason") == "KfpRefused" and (previous or {}).get(
            "generation"
        ) == generation
        attempts = int((previous or {}).get("attempts", 0)) + 1 if same else 1
        wait = min(REFUSED_FIRST_RETRY_SECONDS * 2 ** (attempts - 1), REFUSED_MAX_RETRY_SECONDS)
        error.update(
            reason="KfpRefused", attempts=attempts, retryTime=ts(now + timedelta(seconds=wait))
        )
    else:
        error["reason"] = "KfpUnreachable" if unreachable(exc) else "LaunchFailed"
    return error


def may_try(error: Mapping[str, Any] | None, now: datetime, generation: int) -> bool:
    """Whether a create may be sent now: at once unless refused; after a refusal, once its
    back-off has passed or the spec changed."""
    if not error or error.get("reason") != "KfpRefused":
        return True
    if error.get("generation") != generation:
        return True
    retry = parse_ts(error.get("retryTime"))
    return retry is None or now >= retry
