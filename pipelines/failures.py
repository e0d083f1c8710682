"""What a failed local run says: the step's reason, the end of the script's error, the step's log."""

from __future__ import annotations

from pathlib import Path

TRACEBACK = "Traceback (most recent call last):"
ERROR_LINES = 8


def error_tail(log: str, limit: int = ERROR_LINES) -> list[str]:
    """The last lines of the last Python traceback in a task's log, through its exception line.

    The training script runs beneath the step, so its traceback is the last one in the step's log;
    Flywheel's own steps fail with one line, never a traceback.
    """
    lines = log.splitlines()
    starts = [index for index, line in enumerate(lines) if line.strip() == TRACEBACK]
    if not starts:
        return []
    block = [lines[starts[-1]]]
    for line in lines[starts[-1] + 1 :]:
        block.append(line)
        if line and not line[0].isspace():  # the exception line ends the traceback
            break
    return block[-limit:]


def failure_message(reason: str, log: Path) -> str:
    """``reason``, then the script's error as the log shows it, then where the whole log is."""
    shown = error_tail(log.read_text(errors="replace")) if log.is_file() else []
    return "\n".join([reason, *(f"  {line}" for line in shown), f"log: {log}"])
