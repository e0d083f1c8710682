"""On SageMaker, a training job's ``output.tar.gz`` (``SM_OUTPUT_DATA_DIR``) is fetched from the
job's output path, ``<S3OutputPath>/<job>/output/``, beside ``model.tar.gz``; moto runs the job."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from flywheel.components.compute.backend import TrainingJobSpec

from .test_seed_flow_on_moto import aws, backend  # noqa: F401 - aws is a fixture

WRITES_OUTPUT_DATA = """
import json, os, pathlib
pathlib.Path(os.environ["SM_OUTPUT_DATA_DIR"], "metrics.json").write_text(json.dumps({"rmse": 0.25}))
pathlib.Path(os.environ["SM_MODEL_DIR"], "model.txt").write_text("fitted")
"""
WRITES_ONLY_THE_MODEL = """
import os, pathlib
pathlib.Path(os.environ["SM_MODEL_DIR"], "model.txt").write_text("fitted")
"""


@pytest.fixture
def job(one_script_job: Callable[..., TrainingJobSpec]) -> Callable[[str], TrainingJobSpec]:
    """``job(script)``: the script's training job on a headerless one-row channel."""
    return lambda script: one_script_job(script, job_name="output-data", rows="1,2,3\n")


def test_a_sagemaker_jobs_output_data_is_fetched_from_its_output_path(aws, job, tmp_path):  # noqa: F811
    result = backend(aws, "output-data").train(job(WRITES_OUTPUT_DATA), log=lambda _: None)
    archive = Path(result.output_data_artifact)
    assert archive == tmp_path / "out" / result.job_name / "output" / "output.tar.gz"
    with tarfile.open(archive) as tar:
        assert json.load(tar.extractfile("metrics.json")) == {"rmse": 0.25}


def test_a_sagemaker_job_that_wrote_no_output_data_has_none(aws, job, tmp_path):  # noqa: F811
    result = backend(aws, "no-output-data").train(job(WRITES_ONLY_THE_MODEL), log=lambda _: None)
    assert result.output_data_artifact is None
