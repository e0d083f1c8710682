"""Cancel the cloud job when the step is cancelled.

Kubernetes sends SIGTERM to a pod when a run is terminated in the Kubeflow UI or the pod is
evicted. Without this, the step dies and the SageMaker job keeps running, and billing, on its
own. Inside :func:`cancel_on_sigterm`, SIGTERM raises :class:`StepCancelled` in the polling loop,
which then stops the job; the previous handler is restored on exit.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class StepCancelled(BaseException):
    """SIGTERM arrived while a job was running. A BaseException so no ``except Exception`` eats it."""


def _raise_cancelled(signum: int, frame: FrameType | None) -> None:
    raise StepCancelled(f"received signal {signum}")


@contextlib.contextmanager
def cancel_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into :class:`StepCancelled` for the duration of the block.

    Signal handlers can only be set from the main thread; elsewhere (a thread pool in a test or a
    notebook) the block runs without one, and cancellation is the caller's business.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_cancelled)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
