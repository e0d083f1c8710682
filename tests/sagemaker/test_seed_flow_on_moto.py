"""The seed flow on SageMaker: preprocess (a user's script) -> train -> evaluate (a user's script
writing evaluation.json) -> condition -> register, against moto with its jobs really run.

Placeholders cannot carry this flow: evaluate.py loads the trained model through train.py's
``model_fn`` and scores the held-out rows, and the split reads the table preprocess.py wrote. So
moto runs each processing and training job as the service would run its container
(``moto_sagemaker(run_jobs=True)``), and every request is checked against botocore's service model
on the way out (``tests/strict_aws``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import botocore.session
import pytest

from flywheel.components.compute.sagemaker import SageMakerBackend, SageMakerConfig, Watch
from flywheel.components.contract.processing import (
    ProcessingInput,
    ProcessingJobSpec,
    ProcessingOutput,
)
from flywheel.components.errors import JobFailedError
from flywheel.components.registry import open_registry
from flywheel.pipelines.defaults import Home
from flywheel.pipelines.pipeline_run import run_named_pipeline
from flywheel.pipelines.training_run import TrainingRequest, run_training

from .conftest import FakeClock
from .moto_sagemaker import PROCESSING_FAILURE, moto_account
from .test_pipeline_on_moto import BUCKET, moto_config, record_requests, write_source

STRICT_AWS = Path(__file__).resolve().parents[1] / "strict_aws"
HYPERPARAMETERS = {"n_estimators": 20, "n_bits": 1024}


@pytest.fixture
def aws(monkeypatch):
    """moto on 127.0.0.1 running processing and training jobs, with the e2e bucket."""
    with moto_account(monkeypatch, BUCKET, run_jobs=True) as endpoint_url:
        yield endpoint_url


def assert_requests_are_checked_against_the_service_model() -> None:
    """This process's clients are strict, and so are the task processes it starts."""
    assert botocore.session.Session.create_client.__name__ == "_strict_create_client"
    assert os.environ["PYTHONPATH"].split(os.pathsep)[0] == str(STRICT_AWS)


def program(endpoint_url: str, request: dict) -> str:
    """The script a processing request runs, as its runproc.sh names it."""
    bucket, key = (
        next(
            item["S3Input"]["S3Uri"]
            for item in request["processing_inputs"]
            if item["InputName"] == "entrypoint"
        )
        .removeprefix("s3://")
        .split("/", 1)
    )
    s3 = boto3.client("s3", endpoint_url=endpoint_url)
    runproc = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return runproc.strip().splitlines()[-1].split()[1]


def evaluation_report(endpoint_url: str, request: dict) -> dict:
    """The evaluation.json an evaluation job wrote to its output prefix."""
    (output,) = request["processing_output_config"]["Outputs"]
    bucket, prefix = output["S3Output"]["S3Uri"].removeprefix("s3://").split("/", 1)
    s3 = boto3.client("s3", endpoint_url=endpoint_url)
    body = s3.get_object(Bucket=bucket, Key=f"{prefix}/evaluation.json")["Body"].read()
    return json.loads(body)


def backend(endpoint_url: str, prefix: str) -> SageMakerBackend:
    config = SageMakerConfig.from_mapping(moto_config(endpoint_url, prefix))
    return SageMakerBackend(config, watch=Watch(clock=FakeClock()))


def script(folder: Path, text: str) -> Path:
    folder.mkdir()
    (folder / "job.py").write_text(text)
    return folder


def test_each_instance_of_a_processing_job_on_moto_gets_its_own_share_of_a_sharded_input(
    aws, tmp_path
):
    source = script(
        tmp_path / "code",
        "import json, os, pathlib\n"
        "host = json.load(open('/opt/ml/config/resourceconfig.json'))['current_host']\n"
        "seen = sorted(os.listdir('/opt/ml/processing/input/rows'))\n"
        "out = pathlib.Path('/opt/ml/processing/output/seen')\n"
        "(out / f'{host}.txt').write_text(' '.join(seen) + ' ' + os.environ['RUN'])\n",
    )
    rows = tmp_path / "rows"
    rows.mkdir()
    for index in range(4):
        (rows / f"part-{index}.csv").write_text(f"{index}\n")
    spec = ProcessingJobSpec(
        job_name="sharded",
        source_dir=str(source),
        entry_point="job.py",
        inputs=(ProcessingInput("rows", str(rows), distribution="ShardedByS3Key"),),
        outputs=(ProcessingOutput("seen", destination=str(tmp_path / "seen")),),
        environment={"RUN": "env-reached-the-script"},
        instance_count=2,
    )

    backend(aws, "sharded").process(spec, log=lambda _: None)

    seen = {path.name: path.read_text() for path in (tmp_path / "seen").iterdir()}
    assert seen == {
        "algo-1.txt": "part-0.csv part-2.csv env-reached-the-script",
        "algo-2.txt": "part-1.csv part-3.csv env-reached-the-script",
    }


def test_a_failing_processing_script_fails_its_job_on_moto_with_the_scripts_exit_message(
    aws, tmp_path
):
    source = script(
        tmp_path / "code",
        "import pathlib, sys\n"
        "pathlib.Path('/opt/ml/output/message').write_text('ValueError: no rows to clean')\n"
        "sys.exit(3)\n",
    )
    spec = ProcessingJobSpec(
        job_name="failing",
        source_dir=str(source),
        entry_point="job.py",
        outputs=(ProcessingOutput("data"),),
    )

    with pytest.raises(
        JobFailedError, match="the container said: ValueError: no rows to clean"
    ) as raised:
        backend(aws, "failing").process(spec, log=lambda _: None)

    sagemaker = boto3.client("sagemaker", endpoint_url=aws)
    described = sagemaker.describe_processing_job(ProcessingJobName=raised.value.job_name)
    assert described["ProcessingJobStatus"] == "Failed"
    assert described["FailureReason"] == PROCESSING_FAILURE
    assert described["ExitMessage"] == "ValueError: no rows to clean"


@pytest.mark.e2e
def test_processing_workload_preprocesses_trains_evaluates_and_registers_on_sagemaker(
    aws, tmp_path, monkeypatch
):
    assert_requests_are_checked_against_the_service_model()
    processing = record_requests(monkeypatch, "create_processing_job")
    training = record_requests(monkeypatch, "create_training_job")
    registry = tmp_path / "registry"
    request = TrainingRequest(
        workload="builtin:qsar-processing",
        source=str(write_source(tmp_path / "compounds.csv")),
        compute="sagemaker",
        compute_config=moto_config(aws, "seed"),
        hyperparameters=HYPERPARAMETERS,
        registry=str(registry),
        pipeline_root=str(tmp_path / "runs"),
        cache=False,
    )

    outcome = run_training(request)

    assert [program(aws, r) for r in processing] == ["preprocess.py", "evaluate.py"]
    (trained,) = training
    assert trained["hyper_parameters"]["n_estimators"] == "20"
    sagemaker = boto3.client("sagemaker", endpoint_url=aws)
    for made in processing:
        name = made["processing_job_name"]
        described = sagemaker.describe_processing_job(ProcessingJobName=name)
        assert described["ProcessingJobStatus"] == "Completed"
    report = evaluation_report(aws, processing[-1])["regression_metrics"]
    assert outcome.version.version == 1
    assert {name: outcome.version.metrics[name] for name in ("rmse", "mse", "r2")} == {
        name: report[name]["value"] for name in ("rmse", "mse", "r2")
    }
    champion = open_registry(str(registry)).champion(outcome.version.name)
    assert champion is not None and champion.version == 1


@pytest.mark.e2e
def test_composed_processing_pipeline_registers_a_good_enough_model_on_sagemaker(
    aws, tmp_path, monkeypatch
):
    # The condition's other branch (nothing registered) is pinned locally, in
    # tests/processing/test_seed_flow.py: the backend does not change how KFP evaluates it.
    max_rmse = 100.0
    assert_requests_are_checked_against_the_service_model()
    processing = record_requests(monkeypatch, "create_processing_job")
    training = record_requests(monkeypatch, "create_training_job")
    registry = tmp_path / "registry"
    parameters = {
        "compute": "sagemaker",
        "compute_config": json.dumps(moto_config(aws, f"composed-{max_rmse}")),
        "source": str(write_source(tmp_path / "compounds.csv")),
        "hyperparameters": json.dumps(HYPERPARAMETERS),
        "registry": str(registry),
        "max_rmse": str(max_rmse),
    }

    run = run_named_pipeline(
        "qsar-processing", list(parameters.items()), home=Home(tmp_path / "home"), cache=False
    )

    assert [program(aws, r) for r in processing] == ["preprocess.py", "evaluate.py"]
    assert len(training) == 1
    rmse = evaluation_report(aws, processing[-1])["regression_metrics"]["rmse"]["value"]
    assert run.outputs["Output"] == pytest.approx(rmse)
    versions = open_registry(str(registry)).versions("qsar-pic50-composed")
    assert "register-model" in run.tasks.started
    (version,) = versions
    assert version.metrics["rmse"] == pytest.approx(rmse)
