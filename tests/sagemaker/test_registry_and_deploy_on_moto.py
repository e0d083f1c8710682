"""SageMaker Model Registry behind the registry interface, and the deploy-endpoint component, on moto."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import boto3
import pytest
from kfp import local

from flywheel.components.compute.local import LocalBackend
from flywheel.components.contract.packaging import unpack_archive
from flywheel.components.contract.workload import load_workload
from flywheel.components.deployment import deploy_endpoint
from flywheel.components.registry import open_registry

from .conftest import ROLE
from .moto_sagemaker import moto_sagemaker, placeholder_model_archive

BUCKET = "flywheel-registry"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


@pytest.fixture
def endpoint_url(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto_sagemaker(monkeypatch) as url:
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
        yield url


def test_registry_registers_once_promotes_and_finds_latest_approved(endpoint_url, tmp_path):
    registry = registry_at(endpoint_url)
    first_model, second_model = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    first_model.write_bytes(placeholder_model_archive())
    second_model.write_bytes(placeholder_model_archive() + b"\0")
    lineage = {"run": {"id": "run-1"}}

    first = registry.register(
        "qsar", str(first_model), metrics={"rmse": 0.9}, hyperparameters={"n": 1}, lineage=lineage
    )
    again = registry.register(
        "qsar", str(first_model), metrics={"rmse": 0.9}, hyperparameters={}, lineage=lineage
    )
    second = registry.register(
        "qsar", str(second_model), metrics={"rmse": 0.7}, hyperparameters={}, lineage=lineage
    )

    assert (first.created, again.created, second.created) == (True, False, True)
    assert again.version.version == first.version.version == 1
    assert registry.champion("qsar") is None
    registry.promote("qsar", 1, "first model")
    registry.promote("qsar", 2, "rmse 0.7 beats 0.9")
    champion = registry.champion("qsar")
    assert champion is not None and champion.version == 2
    assert champion.metrics == {"rmse": 0.7}
    assert [v.stage for v in registry.versions("qsar")] == ["archived", "champion"]


def registry_at(endpoint_url: str):
    return open_registry(
        f"sagemaker://us-east-1/{BUCKET}/models?image={IMAGE}&endpoint_url={endpoint_url}"
    )


@pytest.mark.parametrize(
    "hyperparameters",
    [
        pytest.param(
            load_workload("builtin:qsar").resolve_hyperparameters({}), id="example-defaults"
        ),
        pytest.param({f"param_{i}": i * 0.5 for i in range(60)}, id="60-hyperparameters"),
        pytest.param({"note": "x" * 300, "nested": {"a": [1, None, "b c"]}}, id="300-char-value"),
    ],
)
def test_registry_round_trips_hyperparameters_and_lineage_within_sagemaker_limits(
    endpoint_url, tmp_path, hyperparameters
):
    registry = registry_at(endpoint_url)
    model = tmp_path / "model.tar.gz"
    model.write_bytes(placeholder_model_archive())
    lineage = {"data": {"train": {"columns": ["smiles"], "sha256": "ab" * 32}}, "note": "é" * 300}

    # moto keeps its state for the whole process: a group of its own per case.
    name = f"round-trip-{len(hyperparameters)}"
    registered = registry.register(
        name,
        str(model),
        metrics={"rmse": 0.5, "r2 (test)": 0.8},
        hyperparameters=hyperparameters,
        lineage=lineage,
    )
    again = registry.register(
        name, str(model), metrics={}, hyperparameters=hyperparameters, lineage=lineage
    )

    (listed,) = registry.versions(name)
    for version in (registered.version, again.version, listed):
        assert version.hyperparameters == hyperparameters
        assert version.lineage["data"] == lineage["data"]
        assert version.lineage["note"] == lineage["note"]
        assert version.metrics == {"rmse": 0.5, "r2 (test)": 0.8}
    assert again.created is False


@pytest.mark.e2e
def test_deploy_endpoint_component_serves_a_registered_package(endpoint_url, tmp_path):
    registry = registry_at(endpoint_url)
    model = tmp_path / "model.tar.gz"
    model.write_bytes(placeholder_model_archive())
    version = registry.register(
        "qsar", str(model), metrics={}, hyperparameters={}, lineage={}
    ).version
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))

    task = deploy_endpoint(
        compute_config={
            "role_arn": ROLE,
            "s3_prefix": f"s3://{BUCKET}/flywheel",
            "region": "us-east-1",
            "endpoint_url": endpoint_url,
            "image_uri": IMAGE,
        },
        model_package_arn=version.lineage["model_package_arn"],
        endpoint_name="qsar-prod",
    )

    assert task.outputs["endpoint"].metadata["endpoint_arn"].endswith(":endpoint/qsar-prod")
    sagemaker = boto3.client("sagemaker", endpoint_url=endpoint_url)
    assert sagemaker.describe_endpoint(EndpointName="qsar-prod")["EndpointStatus"] == "InService"


def trained_qsar_model(folder: Path) -> Path:
    """A real model.tar.gz of the example, trained by the local backend on a few compounds."""
    workload = load_workload("builtin:qsar")
    data = folder / "compounds.csv"
    rows = [("c1", "CCO", 5.1), ("c2", "CCN", 6.2), ("c3", "c1ccccc1", 4.3), ("c4", "CCCl", 5.5)]
    data.write_text("compound_id,smiles,pIC50\n" + "".join(f"{i},{s},{y}\n" for i, s, y in rows))
    job = workload.training_job(
        job_name="servable",
        channels={"train": str(data), "test": str(data)},
        hyperparameters=workload.resolve_hyperparameters({"n_estimators": 5, "n_bits": 512}),
        output_location=str(folder / "out"),
    )
    return Path(LocalBackend().train(job, log=lambda _: None).model_artifact)


def test_registered_package_serves_a_batch_from_what_an_endpoint_receives(
    endpoint_url, tmp_path, monkeypatch
):
    workload = load_workload("builtin:qsar")
    registry = registry_at(endpoint_url)
    version = registry.register(
        "servable",
        str(trained_qsar_model(tmp_path)),
        metrics={"rmse": 0.5},
        hyperparameters={},
        lineage={"code": {"workload": str(workload.path), "entry_point": workload.entry_point}},
    ).version
    sagemaker = boto3.client("sagemaker", endpoint_url=endpoint_url)
    package = sagemaker.describe_model_package(
        ModelPackageName=version.lineage["model_package_arn"]
    )
    (container,) = package["InferenceSpecification"]["Containers"]
    environment = container["Environment"]

    # What the serving container does: unpack ModelDataUrl into /opt/ml/model, then load
    # SAGEMAKER_PROGRAM from SAGEMAKER_SUBMIT_DIRECTORY and call its handlers.
    archive = tmp_path / "received.tar.gz"
    bucket, key = container["ModelDataUrl"].removeprefix("s3://").split("/", 1)
    boto3.client("s3", endpoint_url=endpoint_url).download_file(bucket, key, str(archive))
    model_dir = unpack_archive(archive, tmp_path / "opt" / "ml" / "model")
    code_dir = model_dir / Path(environment["SAGEMAKER_SUBMIT_DIRECTORY"]).relative_to(
        "/opt/ml/model"
    )
    monkeypatch.syspath_prepend(str(code_dir))
    loaded = importlib.util.spec_from_file_location(
        "served_entry_point", code_dir / environment["SAGEMAKER_PROGRAM"]
    )
    handlers = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(handlers)

    model = handlers.model_fn(str(model_dir))
    batch = handlers.input_fn("CCO\nc1ccccc1\nCCCN\n", "text/csv")
    predictions = handlers.predict_fn(batch, model)

    assert len(predictions) == 3
    assert all(4.0 <= p <= 6.5 for p in predictions)


@pytest.mark.parametrize("damage", ["deleted", "not-json"])
def test_versions_stay_readable_when_the_metadata_document_is_damaged(
    endpoint_url, tmp_path, damage
):
    registry = registry_at(endpoint_url)
    model = tmp_path / "model.tar.gz"
    model.write_bytes(placeholder_model_archive() + damage.encode())
    name = f"damaged-{damage}"
    version = registry.register(
        name, str(model), metrics={"rmse": 0.5}, hyperparameters={"n": 1}, lineage={}
    ).version
    bucket, key = version.lineage["document"].removeprefix("s3://").split("/", 1)
    s3 = boto3.client("s3", endpoint_url=endpoint_url)
    if damage == "deleted":
        s3.delete_object(Bucket=bucket, Key=key)
    else:
        s3.put_object(Bucket=bucket, Key=key, Body=b"{truncated")

    (listed,) = registry.versions(name)

    assert listed.metrics == {"rmse": 0.5}
    assert listed.hyperparameters == {}
