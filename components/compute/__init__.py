"""Choosing compute: one name per backend, the same for every step and from every entry point."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flywheel.components.compute.backend import ComputeBackend
from flywheel.components.errors import InvalidSpecError

ComputeConfig = Mapping[str, Any]


def _local(config: ComputeConfig) -> ComputeBackend:
    from flywheel.components.compute.local import LocalBackend

    if config:
        raise InvalidSpecError(
            "compute_config", f"local compute takes no settings, got {sorted(config)}"
        )
    return LocalBackend()


def _eks_gpu(config: ComputeConfig) -> ComputeBackend:
    # The config is the placement (components/compute/eks/placement.py); the backend needs its GPU count.
    from flywheel.components.compute.eks import EksGpuBackend, Placement

    return EksGpuBackend(Placement.from_mapping(config))


def _sagemaker(config: ComputeConfig) -> ComputeBackend:
    # Checks every setting now, so a bad config fails before any AWS call (see components/compute/sagemaker/specs.py).
    from flywheel.components.compute.sagemaker import SageMakerBackend, SageMakerConfig

    return SageMakerBackend(SageMakerConfig.from_mapping(config))


# Each factory validates its own ``compute_config`` (a plain dict, as KFP passes it) before any
# cloud call, and names the offending field.
BACKENDS: dict[str, Callable[[ComputeConfig], ComputeBackend]] = {
    "local": _local,
    "eks-gpu": _eks_gpu,
    "sagemaker": _sagemaker,
}


def backend_for(compute: str, config: ComputeConfig | None = None) -> ComputeBackend:
    """The backend named ``compute`` set up from ``config``, or an error listing the ones that exist."""
    factory = BACKENDS.get(compute)
    if factory is None:
        raise InvalidSpecError("compute", f"{compute!r} is not one of {', '.join(BACKENDS)}")
    return factory(dict(config or {}))
