"""Processing tests: our own SageMaker-style scripts (``scripts/``) and an S3 on moto."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flywheel.components.compute.local.processing import LocalProcessor
from flywheel.components.contract.processing import ProcessingJobSpec, ProcessingResult

BUCKET = "processing"


@pytest.fixture
def s3(moto_s3: Callable[[str], Any]) -> Any:
    """An S3 client on the session's moto server; jobs inherit its endpoint and fake keys."""
    return moto_s3(BUCKET)


@pytest.fixture
def bucket(s3: Any) -> str:
    """The bucket ``s3`` made."""
    return BUCKET


@pytest.fixture
def process(tmp_path: Path) -> Callable[..., ProcessingResult]:
    """Run a spec on a ``LocalProcessor`` whose default outputs go under ``tmp_path``."""

    def run(spec: ProcessingJobSpec, log: Callable[[str], None] = lambda _: None):
        return LocalProcessor(output_root=tmp_path / "outputs").process(spec, log)

    return run
