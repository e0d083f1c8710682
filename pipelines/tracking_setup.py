"""Point a local run's tasks at the tracking store.

Each task is a process of its own that inherits the command's environment, so the URI is set
there for the length of the command: ``MLFLOW_TRACKING_URI`` if the user set it (checked first,
one line if it is not a URI), else the SQLite store in Flywheel's home. ``FLYWHEEL_TRACKING=off``
turns tracking off. A new SQLite store is created once, just before the first task starts (after
every input check), so parallel trials never race MLflow's schema set-up.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from flywheel.components.tracking import (
    TRACKING_SWITCH_VARIABLE,
    TRACKING_URI_VARIABLE,
    check_tracking_uri,
    tracking_installed,
    tracking_switched_off,
)
from flywheel.pipelines.defaults import Home


def tracking_uri_for(home: Home, given: str | None = None) -> str:
    """The store commands read and runs write: ``given``, ``$MLFLOW_TRACKING_URI``, else the
    home's; refused in one line (``InvalidSpecError``) when it is not a tracking URI."""
    return check_tracking_uri(given or os.environ.get(TRACKING_URI_VARIABLE) or home.tracking_uri)


@contextlib.contextmanager
def tracking_for_run(home: Home, say: Callable[[str], None]) -> Iterator[str | None]:
    """While the command runs, its tasks track to the checked URI; yields it, or None (said in
    one line) when tracking is off."""
    if tracking_switched_off():
        say(f"tracking is off: {TRACKING_SWITCH_VARIABLE}=off")
        yield None
        return
    uri = tracking_uri_for(home)
    if not tracking_installed():
        say("tracking is off: mlflow is not installed (pip install 'flywheel-mlops[tracking]')")
        yield None
        return
    previous = os.environ.get(TRACKING_URI_VARIABLE)
    os.environ[TRACKING_URI_VARIABLE] = uri
    try:
        yield uri
    finally:
        if previous is None:
            os.environ.pop(TRACKING_URI_VARIABLE, None)
        else:
            os.environ[TRACKING_URI_VARIABLE] = previous


def create_local_store() -> None:
    """Create the SQLite store the tasks are about to track to, if it is new."""
    uri = os.environ.get(TRACKING_URI_VARIABLE, "")
    if not uri.startswith("sqlite:///") or tracking_switched_off() or not tracking_installed():
        return
    database = Path(uri.removeprefix("sqlite:///"))
    if database.exists():
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # each schema step, at INFO
    MlflowClient(uri).search_experiments(max_results=1)  # creates the schema
