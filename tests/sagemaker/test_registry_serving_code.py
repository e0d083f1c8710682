"""A registered SageMaker model package carries the workload's serving code, not its training code.

With ``serving.entry_point``, ``source_dir`` and ``dependencies`` (the SDK's ``PyTorchModel(
entry_point="inference.py", source_dir=..., dependencies=[...])``), the package's ``model.tar.gz``
holds that code under ``code/`` with the dependencies beside it, and its environment names it, so
an endpoint made from the package imports it from ``/opt/ml/model/code`` alone.
"""

from __future__ import annotations

import io
import tarfile

import boto3
import pytest

from flywheel.components.registry import open_registry

from .moto_sagemaker import moto_sagemaker, placeholder_model_archive

BUCKET = "flywheel-registry-code"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.3.0-cpu-py311"
WORKLOAD = """\
name: split-code
task: regression
source_dir: training
entry_point: train.py
framework: pytorch
data: {id_column: id, feature_columns: [x], label_column: y}
objective: {metric: rmse, goal: minimize}
serving:
  source_dir: serving
  entry_point: inference.py
  dependencies: [shared/my_library]
"""


@pytest.fixture
def endpoint_url(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto_sagemaker(monkeypatch) as url:
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
        yield url


def test_registered_package_carries_the_serving_entry_point_and_its_dependencies(
    endpoint_url, tmp_path
):
    for folder, name, body in [
        ("training", "train.py", "print('training')\n"),
        ("serving", "inference.py", "from my_library import answer\n"),
        ("shared/my_library", "__init__.py", "answer = 42\n"),
    ]:
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / name).write_text(body)
    (tmp_path / "workload.yaml").write_text(WORKLOAD)
    model = tmp_path / "model.tar.gz"
    model.write_bytes(placeholder_model_archive())
    registry = open_registry(
        f"sagemaker://us-east-1/{BUCKET}/registry?image={IMAGE}&endpoint_url={endpoint_url}"
    )

    version = registry.register(
        "split-code",
        str(model),
        metrics={"rmse": 0.5},
        hyperparameters={},
        lineage={"code": {"workload": str(tmp_path / "workload.yaml"), "entry_point": "train.py"}},
    ).version

    sagemaker = boto3.client("sagemaker", endpoint_url=endpoint_url)
    package = sagemaker.describe_model_package(
        ModelPackageName=version.lineage["model_package_arn"]
    )
    (container,) = package["InferenceSpecification"]["Containers"]
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert container["Environment"]["SAGEMAKER_REGION"] == "us-east-1"
    bucket, key = container["ModelDataUrl"].removeprefix("s3://").split("/", 1)
    body = boto3.client("s3", endpoint_url=endpoint_url).get_object(Bucket=bucket, Key=key)
    with tarfile.open(fileobj=io.BytesIO(body["Body"].read())) as archive:
        names = set(archive.getnames())
    assert {"PLACEHOLDER.txt", "code/inference.py", "code/my_library/__init__.py"} <= names
    assert "code/train.py" not in names
