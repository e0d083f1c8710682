"""Point a local run's tasks at the tracking store, before any task starts.

Each task is a process of its own that inherits the command's environment, so the URI is set
there once: ``MLFLOW_TRACKING_URI`` if the user set it (checked, one line if it is not a URI),
else the SQLite store in Flywheel's home. A new SQLite store is created here, once, so parallel
trials do not race MLflow's schema migrations on the first write.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from flywheel.components.tracking import (
    TRACKING_URI_VARIABLE,
    check_tracking_uri,
    tracking_installed,
)
from flywheel.pipelines.defaults import Home


def tracking_uri_for(home: Home, given: str | None = None) -> str:
    """The store commands read and runs write: ``given``, ``$MLFLOW_TRACKING_URI``, else the
    home's; refused in one line (``InvalidSpecError``) when it is not a tracking URI."""
    return check_tracking_uri(given or os.environ.get(TRACKING_URI_VARIABLE) or home.tracking_uri)


def prepare_tracking(home: Home, say: Callable[[str], None]) -> str | None:
    """Check the URI and hand it to this run's tasks; None (said in one line) when tracking is
    off because ``mlflow`` is not installed."""
    uri = tracking_uri_for(home)
    if not tracking_installed():
        say("tracking is off: mlflow is not installed (pip install 'flywheel-mlops[tracking]')")
        return None
    os.environ[TRACKING_URI_VARIABLE] = uri
    database = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
    if database is not None and not database.exists():
        database.parent.mkdir(parents=True, exist_ok=True)
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # each schema step, at INFO
        MlflowClient(uri).search_experiments(max_results=1)  # creates the schema
    return uri
