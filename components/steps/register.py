"""Register: add the evaluated model to the registry as a candidate, with its lineage."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flywheel.components.registry import Registration, open_registry


def register_model(
    *,
    registry_uri: str,
    model_name: str,
    model_path: Path,
    metrics: Mapping[str, float],
    hyperparameters: Mapping[str, Any],
    lineage: Mapping[str, Any],
) -> Registration:
    return open_registry(registry_uri).register(
        model_name,
        str(model_path),
        metrics=metrics,
        hyperparameters=hyperparameters,
        lineage=lineage,
    )
