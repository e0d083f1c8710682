"""Serving code inside ``model.tar.gz``, as the SageMaker Python SDK repacks a model.

A serving container loads ``model_fn`` and friends from ``SAGEMAKER_PROGRAM`` in
``SAGEMAKER_SUBMIT_DIRECTORY``. Pointing that at S3 works only while the container can reach S3;
a registered package must carry its code (it outlives the run that staged it), and a network
isolated container can reach nothing. So the code goes under ``code/`` in the archive, which
SageMaker unpacks to ``/opt/ml/model``, and the environment names ``/opt/ml/model/code``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from flywheel.components.contract.packaging import MODEL_ARCHIVE, pack_folder, unpack_archive

MODEL_CODE_DIRECTORY = "/opt/ml/model/code"


def serving_environment(entry_point: str, submit_directory: str, region: str) -> dict[str, str]:
    """What SageMaker's framework serving containers read to load the user's handlers."""
    return {
        "SAGEMAKER_PROGRAM": entry_point,
        "SAGEMAKER_SUBMIT_DIRECTORY": submit_directory,
        "SAGEMAKER_REGION": region,
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
    }


def with_serving_code(model_archive: Path, source_dir: Path, scratch: Path) -> Path:
    """A byte-reproducible copy of ``model_archive`` with ``source_dir`` under ``code/``."""
    folder = unpack_archive(model_archive, scratch / "model")
    shutil.copytree(
        source_dir,
        folder / "code",
        ignore=shutil.ignore_patterns("__pycache__"),
        dirs_exist_ok=True,
    )
    return pack_folder(folder, scratch / "servable" / MODEL_ARCHIVE)
