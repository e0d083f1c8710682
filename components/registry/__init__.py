"""Model registries behind one small interface; ``open_registry`` picks one from a URI."""

from __future__ import annotations

from components.registry.base import STAGES, ModelRegistry, ModelVersion, Registration, Stage
from components.registry.local import LocalModelRegistry, validate_model_name


def open_registry(uri: str) -> ModelRegistry:
    """A registry for ``uri``: a folder path (or ``file://`` URI) opens the local registry."""
    if uri.startswith("file://"):
        return LocalModelRegistry(uri.removeprefix("file://"))
    return LocalModelRegistry(uri)


__all__ = [
    "STAGES",
    "LocalModelRegistry",
    "ModelRegistry",
    "ModelVersion",
    "Registration",
    "Stage",
    "open_registry",
    "validate_model_name",
]
