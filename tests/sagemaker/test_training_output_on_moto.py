"""On SageMaker, a training job's ``output.tar.gz`` (``SM_OUTPUT_DATA_DIR``) is fetched from the
job's output path, ``<S3OutputPath>/<job>/output/``, beside ``model.tar.gz``; moto runs the job."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

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


def job(tmp_path: Path, script: str) -> TrainingJobSpec:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(script)
    data = tmp_path / "data.csv"
    data.write_text("1,2,3\n")
    return TrainingJobSpec(
        job_name="output-data",
        source_dir=str(code),
        entry_point="train.py",
        channels={"train": str(data)},
        hyperparameters={},
        output_location=str(tmp_path / "out"),
    )


def test_a_sagemaker_jobs_output_data_is_fetched_from_its_output_path(aws, tmp_path):  # noqa: F811
    result = backend(aws, "output-data").train(
        job(tmp_path, WRITES_OUTPUT_DATA), log=lambda _: None
    )
    archive = Path(result.output_data_artifact)
    assert archive == tmp_path / "out" / result.job_name / "output" / "output.tar.gz"
    with tarfile.open(archive) as tar:
        assert json.load(tar.extractfile("metrics.json")) == {"rmse": 0.25}


def test_a_sagemaker_job_that_wrote_no_output_data_has_none(aws, tmp_path):  # noqa: F811
    result = backend(aws, "no-output-data").train(
        job(tmp_path, WRITES_ONLY_THE_MODEL), log=lambda _: None
    )
    assert result.output_data_artifact is None
