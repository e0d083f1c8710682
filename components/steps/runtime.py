"""How a step fails inside a KFP task: one readable line, not a framework traceback.

Inside a task pod, a ``FlywheelError`` becomes the process's last line and exit status 1. When
``FLYWHEEL_EVENTS`` names a file (the CLI sets it for local runs), the failure is also appended
there as JSON, so the CLI can say which step failed and why after kfp.local gives up.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from flywheel.components.errors import FlywheelError

EVENTS_VARIABLE = "FLYWHEEL_EVENTS"
# ``flywheel run tuning`` sets this to a file: ``suggest_trials`` appends the trials it asked and
# each training appends what it trained with and logged, so the command prints a line per trial
# as it finishes. Unset on a cluster: nothing is written.
TRIAL_EVENTS_VARIABLE = "FLYWHEEL_TRIAL_EVENTS"


def record_event(event: Mapping[str, Any], variable: str = EVENTS_VARIABLE) -> None:
    """Append ``event`` as a JSON line to the file ``variable`` names, if it names one."""
    target = os.environ.get(variable)
    if target:
        with Path(target).open("a") as events:
            events.write(json.dumps(event) + "\n")


def read_events(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def last_failure() -> str | None:
    """The latest step failure of this run, where a local run records them; None on a cluster."""
    target = os.environ.get(EVENTS_VARIABLE)
    failures = (
        [e for e in read_events(Path(target)) if e.get("status") == "failed"] if target else []
    )
    return f"{failures[-1]['step']} failed: {failures[-1]['error']}" if failures else None


@contextlib.contextmanager
def reported_step(step: str) -> Iterator[None]:
    """Run a step body; turn a ``FlywheelError`` into a one-line failure of this step."""
    try:
        yield
    except FlywheelError as error:
        record_event({"step": step, "status": "failed", "error": str(error)})
        print(f"flywheel: {step} failed: {error}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
