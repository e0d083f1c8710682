"""Defaults every entry point shares, importable without KFP so ``flywheel --help`` starts fast.

The state a run leaves behind (registry, run artifacts, evaluation history, reports) lives in one
home folder: ``.flywheel`` in the folder the command runs from, or ``--home`` / ``FLYWHEEL_HOME``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# The QSAR example ships inside the package, so these work from any folder.
DEFAULT_WORKLOAD = "builtin:qsar"
GPU_WORKLOAD = "builtin:qsar-torch"
# The QSAR example with a tiny search in its ``tuning`` section: ``flywheel run tuning``'s default.
TUNING_WORKLOAD = "builtin:qsar-tuning"
DEFAULT_SOURCE = "builtin:chembl-CHEMBL2321810"
DEFAULT_THRESHOLD = "rmse above 1.0"
HOME_ENVIRONMENT_VARIABLE = "FLYWHEEL_HOME"
DEFAULT_HOME = ".flywheel"
# The compiled pipelines' own defaults: relative to the task's working folder.
DEFAULT_REGISTRY = f"{DEFAULT_HOME}/registry"
DEFAULT_HISTORY = f"{DEFAULT_HOME}/history"


@dataclass(frozen=True)
class Home:
    """Where one user's local state lives; every folder is derived from the root."""

    root: Path

    @classmethod
    def resolve(cls, given: str | Path | None = None) -> Home:
        """``--home`` if given, else ``$FLYWHEEL_HOME``, else ``.flywheel`` here."""
        chosen = given or os.environ.get(HOME_ENVIRONMENT_VARIABLE) or DEFAULT_HOME
        return cls(Path(chosen).expanduser())

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def history(self) -> Path:
        return self.root / "history"

    @property
    def demo(self) -> Path:
        return self.root / "demo"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def tracking_uri(self) -> str:
        """The default MLflow store: SQLite in the home (MLflow 3's own default kind of store)."""
        from flywheel.components.tracking import local_store_uri

        return local_store_uri(self.root)


# Every pipeline Flywheel ships (pipelines/catalog.py builds them); compiled IR is kept beside.
PIPELINE_NAMES = (
    "training",
    "training-eks-gpu",
    "evaluation",
    "tuning",
    "qsar-processing",
    "deployment",
)
COMPILED_DIR = Path(__file__).parent / "compiled"
