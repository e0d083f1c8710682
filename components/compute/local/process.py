"""Run a job's process and stream its output live, line by line."""

from __future__ import annotations

import collections
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from flywheel.components.compute.backend import LogSink

TAIL_LINES = 20


def stream_process(
    command: Sequence[str],
    *,
    cwd: Path,
    environment: Mapping[str, str],
    log: LogSink,
) -> tuple[int, list[str]]:
    """Run ``command``, passing each output line to ``log`` as it appears.

    Returns the exit status and the last lines, which explain a crash when no failure file does.
    """
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    with subprocess.Popen(
        list(command),
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        bufsize=1,
    ) as process:
        assert process.stdout is not None
        for raw_line in process.stdout:
            line = raw_line.rstrip("\n")
            tail.append(line)
            log(line)
        return process.wait(), list(tail)


def crash_reason(tail: list[str]) -> str:
    """The most useful line of a crashed script's output: the exception line of a traceback."""
    meaningful = [line for line in tail if line.strip()]
    if not meaningful:
        return "no output"
    return meaningful[-1].strip()
