"""Which container image a job runs: the one given, or SageMaker's framework image for a version."""

from __future__ import annotations

from flywheel.components.compute.sagemaker.specs import SageMakerConfig
from flywheel.components.errors import InvalidSpecError


def resolve_image(config: SageMakerConfig, region: str, scope: str, instance_type: str) -> str:
    """``config.image_uri``, or the framework image from ``sagemaker-core``'s bundled image table.

    ``image_uris.retrieve`` reads JSON files shipped inside sagemaker-core, so this needs no
    network; an unknown framework or version is refused naming the field.
    """
    if config.image_uri is not None:
        return config.image_uri
    # Imported here: sagemaker-core takes seconds to import, and most steps never need it.
    from sagemaker.core import image_uris

    try:
        return image_uris.retrieve(
            config.framework,
            region=region,
            version=config.framework_version,
            py_version=config.py_version,
            instance_type=instance_type,
            image_scope=scope,
        )
    except ValueError as error:
        raise InvalidSpecError(
            "compute_config.framework_version",
            f"no {scope} image for {config.framework} {config.framework_version}: {error}",
        ) from None
