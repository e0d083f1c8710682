"""Where runs are tracked: ``MLFLOW_TRACKING_URI``, else a SQLite store in Flywheel's home.

MLflow 3 made SQLite its default store (``sqlite:///mlflow.db``) and keeps the ``./mlruns`` file
store only for folders that already hold one; Flywheel follows it, with the database under its
home so every run of a project lands in one place. The check is pure (no ``mlflow`` import), so
the CLI refuses a bad URI in one line before any task starts.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from flywheel.components.errors import InvalidSpecError

TRACKING_URI_VARIABLE = "MLFLOW_TRACKING_URI"
# ``FLYWHEEL_TRACKING=off`` records nothing, wherever the URI points.
TRACKING_SWITCH_VARIABLE = "FLYWHEEL_TRACKING"
# Schemes the MLflow client resolves to a store, plus the tracking server ARN that AWS's
# sagemaker-mlflow plugin registers (SageMaker managed MLflow).
_SERVER_SCHEMES = ("http", "https")
_DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_OTHER_SCHEMES = ("file",)
_SAGEMAKER_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:(mlflow-tracking-server|mlflow-app)/[A-Za-z0-9-]+$"
)
ALLOWED = (
    "http(s)://host[:port], sqlite:///path, postgresql://, mysql://, mssql://, file:///path "
    "or a SageMaker MLflow tracking server ARN"
)


def tracking_installed() -> bool:
    """Whether the MLflow client can be imported (without importing it: that costs seconds)."""
    return importlib.util.find_spec("mlflow") is not None


def tracking_switched_off() -> bool:
    return os.environ.get(TRACKING_SWITCH_VARIABLE, "").lower() == "off"


def local_store_uri(home: Path) -> str:
    """The default store: a SQLite database in Flywheel's home."""
    return f"sqlite:///{(home / 'mlflow.db').resolve()}"


def check_tracking_uri(uri: str) -> str:
    """``uri`` if the MLflow client can use it; else ``InvalidSpecError`` naming what is allowed.

    MLflow itself reads a URI without a scheme as a folder, so ``localhost:5000`` would silently
    track into a folder named ``localhost:5000``; that is refused here.
    """
    if _SAGEMAKER_ARN.match(uri):
        if importlib.util.find_spec("sagemaker_mlflow") is None:
            raise InvalidSpecError(
                TRACKING_URI_VARIABLE,
                f"{uri} is a SageMaker MLflow ARN; it needs AWS's plugin: "
                "pip install sagemaker-mlflow",
            )
        return uri
    if uri.startswith("arn:"):
        raise InvalidSpecError(
            TRACKING_URI_VARIABLE,
            f"{uri!r} is not a SageMaker MLflow tracking server ARN "
            "(arn:aws:sagemaker:<region>:<account>:mlflow-tracking-server/<name>)",
        )
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+")[0]  # postgresql+psycopg2://, as SQLAlchemy spells drivers
    if scheme in _SERVER_SCHEMES and parts.hostname:
        return uri
    if scheme in _DATABASE_SCHEMES or scheme in _OTHER_SCHEMES:
        return uri
    raise InvalidSpecError(TRACKING_URI_VARIABLE, f"{uri!r} is not a tracking URI; use {ALLOWED}")
