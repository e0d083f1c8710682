"""Serving code where each SageMaker framework serving container looks for it, as the SDK sends it.

Two serving stacks read the code differently:

- PyTorch's (sagemaker-pytorch-inference-toolkit on sagemaker-inference) imports
  ``SAGEMAKER_PROGRAM`` only from ``/opt/ml/model/code`` and never downloads
  ``SAGEMAKER_SUBMIT_DIRECTORY``. So the SDK's ``PyTorchModel`` (1.2 and later) always repacks:
  the code goes under ``code/`` in ``model.tar.gz``, which SageMaker unpacks to ``/opt/ml/model``.
  The generic ``Model`` does the same whenever it has a ``source_dir``.
- scikit-learn's and XGBoost's (sagemaker-containers) fetch ``SAGEMAKER_SUBMIT_DIRECTORY``
  (``sourcedir.tar.gz`` on S3, or a local folder) into ``/opt/ml/code`` before serving, so the
  SDK's ``SKLearnModel`` and ``XGBoostModel`` leave the code on S3 and repack only with network
  isolation, where the container reaches nothing.

``code_in_model`` makes the same choice. A registered model package always carries its code (it
outlives the run that staged it). Dependencies sit beside the code under their own names, as in
``sourcedir.tar.gz`` (``contract.packaging.code_with_dependencies``), so ``import <name>`` works the
same in both stacks; the SDK's repack puts them in ``code/lib/``, which neither stack puts on
``sys.path``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from flywheel.components.compute.sagemaker.specs import SageMakerConfig
from flywheel.components.contract.packaging import MODEL_ARCHIVE, pack_folder, unpack_archive
from flywheel.components.errors import InvalidSpecError

MODEL_CODE_DIRECTORY = "/opt/ml/model/code"
# Frameworks whose serving containers download ``SAGEMAKER_SUBMIT_DIRECTORY`` themselves.
SUBMIT_DIRECTORY_FRAMEWORKS = frozenset({"sklearn", "xgboost"})
# A word of the image repository's name, and the framework its images serve (AWS's names:
# sagemaker-scikit-learn, sagemaker-xgboost, pytorch-inference).
_IMAGE_FRAMEWORKS = (("scikit-learn", "sklearn"), ("xgboost", "xgboost"), ("pytorch", "pytorch"))


def image_framework(image_uri: str | None) -> str | None:
    """The framework an AWS framework image serves, from its repository name; None for others."""
    if not image_uri:
        return None
    repository = image_uri.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    return next((name for word, name in _IMAGE_FRAMEWORKS if word in repository), None)


def serving_framework(framework: str | None, config: SageMakerConfig) -> str | None:
    """The workload's ``framework``, else ``compute_config.framework``; refused if they differ."""
    if framework and config.framework and framework != config.framework:
        raise InvalidSpecError(
            "framework",
            f"the workload's framework {framework!r} and compute_config.framework "
            f"{config.framework!r} disagree; give the same framework in both, or only one",
        )
    return framework or config.framework


def code_in_model(framework: str | None, config: SageMakerConfig) -> bool:
    """Whether the serving code goes inside ``model.tar.gz``, as the SDK decides.

    It stays in ``sourcedir.tar.gz`` on S3 only when every sign (the framework and the image)
    says scikit-learn or XGBoost and the container can reach S3. PyTorch, a generic image and
    anything unknown get the repack, which every stack reads.
    """
    signs = {framework, image_framework(config.image_uri)} - {None}
    return config.network_isolation or not signs or not signs <= SUBMIT_DIRECTORY_FRAMEWORKS


def serving_environment(entry_point: str, submit_directory: str, region: str) -> dict[str, str]:
    """What SageMaker's framework serving containers read to load the user's handlers.

    ``SAGEMAKER_REGION`` is left out rather than empty when the region is not known: a script's
    ``os.environ.get("SAGEMAKER_REGION", default)`` would get ``""``, not its default.
    """
    environment = {
        "SAGEMAKER_PROGRAM": entry_point,
        "SAGEMAKER_SUBMIT_DIRECTORY": submit_directory,
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
    }
    if region:
        environment["SAGEMAKER_REGION"] = region
    return environment


def with_serving_code(model_archive: Path, code_folder: Path, scratch: Path) -> Path:
    """A byte-reproducible copy of ``model_archive`` with ``code_folder`` under ``code/``.

    ``code_folder`` is the serving source folder with its dependencies beside it
    (``code_with_dependencies``).
    """
    folder = unpack_archive(model_archive, scratch / "model")
    shutil.copytree(
        code_folder,
        folder / "code",
        ignore=shutil.ignore_patterns("__pycache__"),
        dirs_exist_ok=True,
    )
    return pack_folder(folder, scratch / "servable" / MODEL_ARCHIVE)
