"""What a local run is asked to do, as plain values: light enough for the CLI to build at start-up."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.pipelines.defaults import (
    DEFAULT_HOME,
    DEFAULT_REGISTRY,
    DEFAULT_SOURCE,
    DEFAULT_WORKLOAD,
)


@dataclass(frozen=True)
class TrainingRequest:
    workload: str = DEFAULT_WORKLOAD
    source: str = DEFAULT_SOURCE
    compute: str = "local"
    compute_config: dict[str, Any] = field(default_factory=dict)
    placement: str = ""
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    # Channels brought as they are (``--channel NAME=PATH_OR_S3_URI``), instead of the split's.
    channels: dict[str, str] = field(default_factory=dict)
    registry: str = DEFAULT_REGISTRY
    model_name: str = ""
    batch_count: int = 8
    training_batches: int = 3
    test_fraction: float = 0.2
    seed: int = 7
    order_by: str = ""
    margin: float = 0.0
    pipeline_root: str = f"{DEFAULT_HOME}/runs"
    cache: bool = True


def load_compute_config(path: str) -> dict[str, Any]:
    """``--compute-config FILE``: a YAML (or JSON, which is YAML) mapping of backend settings."""
    import yaml  # only when the option is given

    file = Path(path)
    if not file.is_file():
        raise argparse.ArgumentTypeError(f"{path} does not exist")
    try:
        loaded = yaml.safe_load(file.read_text())
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(f"{path} is not valid YAML or JSON: {error}") from None
    if not isinstance(loaded, dict):
        raise argparse.ArgumentTypeError(f"{path} must hold a mapping of settings")
    return loaded


load_compute_config.__name__ = "compute config file"
