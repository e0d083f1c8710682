"""Model registries behind one small interface; ``open_registry`` picks one from a URI."""

from __future__ import annotations

from flywheel.components.registry.base import (
    APPROVAL_STATUSES,
    STAGES,
    ApprovalStatus,
    ModelRegistry,
    ModelVersion,
    Registration,
    Stage,
)
from flywheel.components.registry.local import LocalModelRegistry, validate_model_name


def open_registry(uri: str) -> ModelRegistry:
    """A registry for ``uri``: a folder path (or ``file://`` URI) opens the local registry.

    ``sagemaker://<region>/<bucket>/<prefix>?image=<serving image URI>`` opens SageMaker Model
    Registry in that region (model name = model package group); local model archives and metric
    reports are uploaded under ``s3://<bucket>/<prefix>``. ``&endpoint_url=`` points at another
    endpoint (a VPC endpoint, or moto in tests).
    """
    if uri.startswith("sagemaker://"):
        from flywheel.components.compute.sagemaker.registry import SageMakerModelRegistry

        return SageMakerModelRegistry.from_uri(uri)
    if uri.startswith("file://"):
        return LocalModelRegistry(uri.removeprefix("file://"))
    return LocalModelRegistry(uri)


__all__ = [
    "APPROVAL_STATUSES",
    "STAGES",
    "ApprovalStatus",
    "LocalModelRegistry",
    "ModelRegistry",
    "ModelVersion",
    "Registration",
    "Stage",
    "open_registry",
    "validate_model_name",
]
