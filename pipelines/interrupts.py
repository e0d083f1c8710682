"""Ctrl-C and SIGTERM: stop what the run started, then unwind as one ``Interrupted``.

Imported by the CLI before anything heavy, so it holds only the signal handling; whoever starts
processes registers how to stop them (``stopping``), and the handler calls that first, because
kfp.local may be waiting on those processes when the signal lands.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator

_STOPPERS: list[Callable[[], None]] = []


class Interrupted(BaseException):
    """The run was stopped by a signal; like KeyboardInterrupt, no ``except Exception`` eats it."""

    def __init__(self, signum: int) -> None:
        self.signal_name = signal.Signals(signum).name
        # The shell's convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
        self.exit_status = 128 + signum
        super().__init__(self.signal_name)


def _interrupt(signum: int, _frame: object) -> None:
    # Once is enough: a second Ctrl-C must not cut short the clean-up the first one started.
    for handled in (signal.SIGINT, signal.SIGTERM):
        signal.signal(handled, signal.SIG_IGN)
    for stop in list(_STOPPERS):
        stop()
    raise Interrupted(signum)


@contextlib.contextmanager
def interrupts_handled() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise ``Interrupted`` in this (the main) thread;
    the handlers before it are back afterwards (the CLI also runs inside tests)."""
    previous = {handled: signal.getsignal(handled) for handled in (signal.SIGINT, signal.SIGTERM)}
    for handled in previous:
        signal.signal(handled, _interrupt)
    try:
        yield
    finally:
        for handled, handler in previous.items():
            signal.signal(handled, handler)


@contextlib.contextmanager
def stopping(stop: Callable[[], None]) -> Iterator[None]:
    """Call ``stop`` when a signal interrupts the block, before the block unwinds."""
    _STOPPERS.append(stop)
    try:
        yield
    finally:
        _STOPPERS.remove(stop)
