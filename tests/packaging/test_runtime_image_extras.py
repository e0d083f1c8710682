"""The runtime image installs every extra a compiled pipeline's tasks import on a cluster."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_runtime_image_has_optuna_for_tuning_and_mlflow_for_tracking() -> None:
    (extras,) = re.findall(r"^ARG EXTRAS=(\S+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    installed = set(extras.split(","))
    # suggest_trials and record_trials import optuna; a train task that tracks imports mlflow,
    # and SageMaker's managed MLflow needs AWS's plugin beside it.
    assert {"example", "tuning", "tracking", "managed-mlflow"} <= installed
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert installed <= set(declared["optional-dependencies"])
