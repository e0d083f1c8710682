"""Register: add the evaluated model to the registry as a candidate, with its lineage."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flywheel.components.contract.workload import HyperparameterSpec
from flywheel.components.errors import InvalidSpecError
from flywheel.components.registry import Registration, open_registry


def register_model(
    *,
    registry_uri: str,
    model_name: str,
    model_path: Path,
    metrics: Mapping[str, float],
    hyperparameters: Mapping[str, Any],
    lineage: Mapping[str, Any],
    declared: Mapping[str, HyperparameterSpec] | None = None,
) -> Registration:
    """Register the model; ``hyperparameters`` are recorded as ``declared`` types them."""
    return open_registry(registry_uri).register(
        model_name,
        str(model_path),
        metrics=metrics,
        hyperparameters=as_declared(hyperparameters, declared or {}),
        lineage=lineage,
    )


def as_declared(
    hyperparameters: Mapping[str, Any], declared: Mapping[str, HyperparameterSpec]
) -> dict[str, Any]:
    """``hyperparameters`` in the types the workload declares them.

    They reach this step through KFP's protobuf Struct, which turns every number into a float
    (``n-estimators: 10.0``); a script with argparse ``type=int`` refuses that when resubmitted.
    A value the declaration refuses, or a name it does not know, is kept as it came.
    """
    typed = dict(hyperparameters)
    for name, value in hyperparameters.items():
        if name in declared:
            with contextlib.suppress(InvalidSpecError):
                typed[name] = declared[name].coerce(value)
    return typed
