"""Find the champion: the model version every evaluation scores with."""

from __future__ import annotations

import shutil
from pathlib import Path

from flywheel.components.errors import RegistryError
from flywheel.components.registry import ModelVersion, open_registry


def find_champion(
    *, registry_uri: str, model_name: str, model_path: Path | None = None
) -> ModelVersion:
    """The champion's record; its ``model.tar.gz`` is copied to ``model_path`` when one is given."""
    registry = open_registry(registry_uri)
    champion = registry.champion(model_name)
    if champion is None:
        raise RegistryError(
            f"model {model_name} has no champion in {registry_uri}: run the training pipeline first"
        )
    if model_path is not None:
        model_path.parent.mkdir(parents=True, exist_ok=True)
        if champion.model_uri.startswith("s3://"):
            # A SageMaker registry: the model is in S3, reached with the registry's own clients.
            registry.fetch_model(champion, model_path)
        else:
            shutil.copyfile(champion.model_uri, model_path)
    return champion
