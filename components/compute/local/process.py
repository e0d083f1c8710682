"""Run a job's process and stream its output live, line by line."""

from __future__ import annotations

import collections
import contextlib
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from flywheel.components.compute.backend import LogSink, StopJob

TAIL_LINES = 20
# How long a job stopped by its step's log sink gets between SIGTERM and SIGKILL.
STOP_GRACE_SECONDS = 2.0


def start_process(
    command: Sequence[str],
    *,
    environment: Mapping[str, str],
    cwd: Path | None = None,
    own_group: bool = False,
) -> subprocess.Popen[str]:
    """Start ``command`` with its output (stderr too) as text lines on ``stdout``, no stdin.

    ``own_group`` puts it in a process group of its own, so it and all it starts can be
    signalled together (:func:`signal_group`) and a signal to the caller's group misses it.
    """
    return subprocess.Popen(
        list(command),
        cwd=cwd,
        env={**os.environ, **environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        bufsize=1,
        start_new_session=own_group,
    )


def follow_lines(
    process: subprocess.Popen[str], tail: collections.deque[str], log: LogSink
) -> None:
    """Pass each output line of ``process`` to ``log`` as it appears, keeping the last in ``tail``."""
    assert process.stdout is not None
    for raw_line in process.stdout:
        line = raw_line.rstrip("\n")
        tail.append(line)
        log(line)


def signal_group(group: int, signum: int) -> None:
    """Send ``signum`` to a process group; one already gone (or never ours) is no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def stream_process(
    command: Sequence[str],
    *,
    cwd: Path,
    environment: Mapping[str, str],
    log: LogSink,
) -> tuple[int, list[str]]:
    """Run ``command``, passing each output line to ``log`` as it appears.

    Returns the exit status and the last lines, which explain a crash when no failure file does.
    When ``log`` raises ``StopJob``, ``command`` and everything it started are stopped
    (:func:`stop_tree`) and the exception goes on; any other exception leaves them as before.
    """
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    with start_process(
        command, cwd=cwd, environment={"PYTHONUNBUFFERED": "1", **environment}
    ) as process:
        try:
            follow_lines(process, tail, log)
        except StopJob:
            stop_tree(process.pid)
            raise
        return process.wait(), list(tail)


def stop_tree(pid: int, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM to ``pid`` and every process it started, SIGKILL to those left after ``grace``.

    The job shares its step's process group (a signal to the step reaches it, as before), so it
    is found by descent instead: the toolkit, the script and the script's own workers.
    """
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for member in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.terminate()
    _gone, alive = psutil.wait_procs(tree, timeout=grace)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()


def crash_reason(tail: list[str]) -> str:
    """The most useful line of a crashed script's output: the exception line of a traceback."""
    meaningful = [line for line in tail if line.strip()]
    if not meaningful:
        return "no output"
    return meaningful[-1].strip()
