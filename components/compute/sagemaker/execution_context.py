"""Cancel the cloud job when the step is cancelled.

Kubernetes sends SIGTERM to a pod when a run is terminated in the Kubeflow UI or the pod is
evicted. Without this, the step dies and the SageMaker job keeps running, and billing, on its
own. Inside :func:`cancel_on_sigterm`, SIGTERM raises :class:`StepCancelled` in the polling loop,
which then stops the job; the previous handler is restored on exit.

A SIGTERM that arrives while a Create call is in flight is held until the call returns: raised in
the middle of it, the job could be created after our Stop was refused as "not found", and then
run with no one watching it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class StepCancelled(BaseException):
    """SIGTERM arrived while a job was running. A BaseException so no ``except Exception`` eats it."""


class _Cancellation:
    """Turns SIGTERM into :class:`StepCancelled`, except inside :meth:`held`, where it waits."""

    def __init__(self) -> None:
        self._holding = 0
        self._pending: int | None = None

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._holding:
            self._pending = signum
            return
        raise StepCancelled(f"received signal {signum}")

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Run a call that must not be cut in half; a SIGTERM during it is raised once it returns."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
        if not self._holding and self._pending is not None:
            raise StepCancelled(f"received signal {self._pending} during a create call")


_current: _Cancellation | None = None


@contextlib.contextmanager
def cancel_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into :class:`StepCancelled` for the duration of the block.

    Signal handlers can only be set from the main thread; elsewhere (a thread pool in a test or a
    notebook) the block runs without one, and cancellation is the caller's business.
    """
    global _current
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    cancellation, outer = _Cancellation(), _current
    previous = signal.signal(signal.SIGTERM, cancellation.on_signal)
    _current = cancellation
    try:
        yield
    finally:
        _current = outer
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold SIGTERM for the block when inside :func:`cancel_on_sigterm`; otherwise do nothing."""
    if _current is None:
        yield
        return
    with _current.held():
        yield
