"""The training pipeline with compute set to SageMaker, end to end through kfp.local, against moto."""

from __future__ import annotations

import csv
import io
import tarfile
from pathlib import Path

import boto3
import pytest
from moto.sagemaker.models import SageMakerModelBackend

from flywheel.components.compute.backend import TransformJobSpec
from flywheel.components.compute.sagemaker import SageMakerBackend, SageMakerConfig, Watch
from flywheel.components.contract.workload import load_workload
from flywheel.components.registry import open_registry
from flywheel.components.steps.scoring import transform_rows
from flywheel.pipelines.evaluation_run import EvaluationRequest, run_evaluation
from flywheel.pipelines.training_run import TrainingRequest, run_training

from .conftest import ROLE, FakeClock
from .moto_sagemaker import (
    PLACEHOLDER_PREDICTION,
    moto_account,
    placeholder_model_archive,
)

BUCKET = "flywheel-e2e"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "qsar"
CORPUS = Path(__file__).resolve().parents[1] / "contract_corpus"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
SMILES = ["CCO", "CCN", "CCC", "CCCl", "c1ccccc1", "CC(=O)O", "CCOC", "CCCN", "CCCO", "CC=O"]


@pytest.fixture
def aws(monkeypatch):
    with moto_account(monkeypatch, BUCKET) as endpoint_url:
        yield endpoint_url


def write_source(path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["compound_id", "smiles", "pIC50"])
        for index in range(40):
            writer.writerow(
                [f"c{index}", SMILES[index % len(SMILES)], f"{4 + index % 7 * 0.5:.2f}"]
            )
    return path


def record_requests(monkeypatch, operation: str) -> list[dict]:
    """Every request moto's SageMaker receives for ``operation``, as it parsed them."""
    requests: list[dict] = []
    original = getattr(SageMakerModelBackend, operation)

    def recorded(self, **kwargs):
        requests.append(kwargs)
        return original(self, **kwargs)

    monkeypatch.setattr(SageMakerModelBackend, operation, recorded)
    return requests


def moto_config(aws: str, prefix: str, **settings: object) -> dict:
    """A SageMaker compute config aimed at moto, under ``s3://BUCKET/<prefix>``."""
    return {
        "role_arn": ROLE,
        "s3_prefix": f"s3://{BUCKET}/{prefix}",
        "region": "us-east-1",
        "endpoint_url": aws,
        "image_uri": IMAGE,
        **settings,
    }


def placeholder_model(tmp_path: Path) -> Path:
    """A ``model.tar.gz`` moto's transform can "serve" (it answers PLACEHOLDER_PREDICTION)."""
    model = tmp_path / "model.tar.gz"
    model.write_bytes(placeholder_model_archive())
    return model


def names(summaries: list[dict], kind: str) -> set[str]:
    return {summary[f"{kind}JobName"] for summary in summaries}


@pytest.mark.e2e
def test_training_pipeline_trains_evaluates_and_registers_on_sagemaker(aws, tmp_path):
    registry = f"sagemaker://us-east-1/{BUCKET}/registry?image={IMAGE}&endpoint_url={aws}"
    request = TrainingRequest(
        source=str(write_source(tmp_path / "compounds.csv")),
        compute="sagemaker",
        compute_config=moto_config(aws, "flywheel"),
        registry=registry,
        pipeline_root=str(tmp_path / "runs"),
        cache=False,
    )

    sagemaker = boto3.client("sagemaker", endpoint_url=aws)
    # moto's state is per process, shared with the test files run before this one
    models_before = sagemaker.list_models()["Models"]
    jobs_before = names(sagemaker.list_training_jobs()["TrainingJobSummaries"], "Training")
    transforms_before = names(sagemaker.list_transform_jobs()["TransformJobSummaries"], "Transform")

    outcome = run_training(request)

    jobs = [
        job
        for job in sagemaker.list_training_jobs()["TrainingJobSummaries"]
        if job["TrainingJobName"] not in jobs_before
    ]
    assert len(jobs) == 1
    described = sagemaker.describe_training_job(TrainingJobName=jobs[0]["TrainingJobName"])
    hyperparameters = described["HyperParameters"]
    assert hyperparameters["sagemaker_program"] == '"train.py"'
    assert hyperparameters["sagemaker_submit_directory"].startswith(
        f'"s3://{BUCKET}/flywheel/code/'
    )
    assert hyperparameters["n_estimators"] == "200"
    assert {c["ChannelName"] for c in described["InputDataConfig"]} == {"train", "test"}
    assert {c.get("ContentType") for c in described["InputDataConfig"]} == {"text/csv"}
    transforms = names(sagemaker.list_transform_jobs()["TransformJobSummaries"], "Transform")
    assert len(transforms - transforms_before) == 1
    assert sagemaker.list_models()["Models"] == models_before, "the transform's model is deleted"
    assert outcome.version.version == 1
    assert outcome.version.metrics["rmse"] > 0
    champion = open_registry(registry).champion("qsar-pic50")
    assert champion is not None and champion.version == 1
    assert champion.model_uri.startswith(f"s3://{BUCKET}/registry/models/")
    assert champion.hyperparameters["max_features"] == "sqrt"
    assert champion.lineage["data"]["train"]["columns"] == ["compound_id", "smiles", "pIC50"]

    # From the second run on, the gate scores the champion fetched from the SageMaker registry.
    second = run_training(request)
    scored = second.run.tasks.started
    assert "score-champion" in scored

    evaluation = run_evaluation(
        EvaluationRequest(
            batch=4, threshold="rmse above 100", history=str(tmp_path / "history"), training=request
        )
    )
    assert evaluation.champion_before == evaluation.champion_after == 1
    assert evaluation.decision["retrain"] is False
    assert evaluation.evaluation["metrics"]["rmse"] > 0


def test_isolated_sharded_transform_serves_the_code_from_inside_the_model(
    aws, tmp_path, monkeypatch
):
    created = record_requests(monkeypatch, "create_model")
    created_transforms = record_requests(monkeypatch, "create_transform_job")
    config = SageMakerConfig.from_mapping(
        moto_config(aws, "isolated", network_isolation=True, transform_instance_count=2)
    )
    model = placeholder_model(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.csv").write_text("CCO\nCCN\nCCC\n")  # records, as scoring writes
    spec = TransformJobSpec(
        job_name="isolated",
        model_artifact=str(model),
        source_dir=str(EXAMPLE),
        entry_point="train.py",
        input_location=str(tmp_path / "in"),
        output_location=str(tmp_path / "out"),
    )

    SageMakerBackend(config, watch=Watch(clock=FakeClock())).transform(spec, log=lambda _: None)

    (request,) = created
    container = request["primary_container"]
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "train.py"
    assert request["execution_role_arn"] == ROLE
    bucket, key = container["ModelDataUrl"].removeprefix("s3://").split("/", 1)
    body = boto3.client("s3", endpoint_url=aws).get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        names = archive.getnames()
    assert {"PLACEHOLDER.txt", "code/train.py", "code/qsar_data.py"} <= set(names)
    # One part per instance, records only; predictions joined back in row order.
    (transform,) = created_transforms
    source = transform["transform_input"]["DataSource"]["S3DataSource"]["S3Uri"]
    bucket, prefix = source.removeprefix("s3://").split("/", 1)
    parts = boto3.client("s3", endpoint_url=aws).list_objects_v2(Bucket=bucket, Prefix=prefix)
    assert [p["Key"].rsplit("/", 1)[1] for p in parts["Contents"]] == [
        "rows.csv.part-00000",
        "rows.csv.part-00001",
    ]
    predictions = (tmp_path / "out" / "rows.csv.out").read_text().splitlines()
    assert predictions == [PLACEHOLDER_PREDICTION] * 3


@pytest.mark.parametrize(
    ("content_type", "file"),
    [("application/jsonlines", "rows.jsonl"), ("application/json", "rows.json")],
)
def test_line_split_transform_takes_the_workloads_split_and_strategy_and_shards_by_record(
    aws, tmp_path, monkeypatch, content_type, file
):
    created = record_requests(monkeypatch, "create_transform_job")
    config = SageMakerConfig.from_mapping(moto_config(aws, "jsonlines", transform_instance_count=2))
    model = placeholder_model(tmp_path)
    (tmp_path / "in").mkdir()
    # JSON split by line is written one array a line, as scoring writes it: a line-record file.
    (tmp_path / "in" / file).write_text("[1.0, 2.0]\n[3.0, 4.0]\n[5.0, 6.0]\n")
    spec = TransformJobSpec(
        job_name="line-split",
        model_artifact=str(model),
        source_dir=str(EXAMPLE),
        entry_point="train.py",
        input_location=str(tmp_path / "in"),
        output_location=str(tmp_path / "out"),
        content_type=content_type,
        accept=content_type,
        split_type="Line",
        batch_strategy="SingleRecord",
    )

    # The suite's strict validator checks every request against botocore's model on the way out.
    SageMakerBackend(config, watch=Watch(clock=FakeClock())).transform(spec, log=lambda _: None)

    (transform,) = created
    assert transform["transform_input"]["ContentType"] == content_type
    assert transform["transform_input"]["SplitType"] == "Line"
    assert transform["batch_strategy"] == "SingleRecord"
    assert transform["transform_output"]["AssembleWith"] == "Line"
    source = transform["transform_input"]["DataSource"]["S3DataSource"]["S3Uri"]
    bucket, prefix = source.removeprefix("s3://").split("/", 1)
    parts = boto3.client("s3", endpoint_url=aws).list_objects_v2(Bucket=bucket, Prefix=prefix)
    bodies = [
        boto3.client("s3", endpoint_url=aws)
        .get_object(Bucket=bucket, Key=part["Key"])["Body"]
        .read()
        .decode()
        for part in parts["Contents"]
    ]
    assert len(bodies) == 2 and "".join(bodies) == "[1.0, 2.0]\n[3.0, 4.0]\n[5.0, 6.0]\n"
    predictions = (tmp_path / "out" / f"{file}.out").read_text().splitlines()
    assert predictions == [PLACEHOLDER_PREDICTION] * 3


def test_scoring_on_sagemaker_sends_the_workloads_split_type_and_batch_strategy(
    aws, tmp_path, monkeypatch
):
    created = record_requests(monkeypatch, "create_transform_job")
    workload = load_workload(CORPUS / "one_prediction_per_request" / "workload.yaml")
    model = placeholder_model(tmp_path)
    rows = [{name: str(index) for name in workload.columns.features} for index in range(5)]

    predictions = transform_rows(
        workload=workload,
        compute="sagemaker",
        compute_config=moto_config(aws, "single-record"),
        model_path=model,
        rows=rows,
        job_name="single-record",
        log=lambda _: None,
    )

    (transform,) = created
    assert transform["transform_input"]["SplitType"] == "Line"
    assert transform["batch_strategy"] == "SingleRecord"
    assert transform["transform_output"]["AssembleWith"] == "Line"
    assert predictions == [PLACEHOLDER_PREDICTION] * 5
