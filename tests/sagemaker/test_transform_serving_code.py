"""Batch transform on SageMaker sends the serving code where each framework container reads it.

PyTorch's serving container imports ``SAGEMAKER_PROGRAM`` only from ``/opt/ml/model/code`` and
never downloads ``SAGEMAKER_SUBMIT_DIRECTORY``, so the code (and its dependencies) must be inside
``model.tar.gz``; scikit-learn's downloads ``sourcedir.tar.gz`` from S3, so there it stays.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import boto3
import pytest
from moto.sagemaker.models import SageMakerModelBackend

from flywheel.components.compute.backend import TransformJobSpec
from flywheel.components.compute.sagemaker import SageMakerBackend, SageMakerConfig, Watch
from flywheel.components.compute.sagemaker import backend as backend_module
from flywheel.components.compute.sagemaker.serving import serving_environment
from flywheel.components.contract.packaging import unpack_archive
from flywheel.components.errors import InvalidSpecError

from .conftest import ROLE, FakeClock
from .moto_sagemaker import (
    PLACEHOLDER_PREDICTION,
    moto_account,
    placeholder_model_archive,
)

BUCKET = "flywheel-serving"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
PYTORCH_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.3.0-cpu-py311"
GENERIC_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-server:1"
INFERENCE = """\
from my_library import answer


def model_fn(model_dir):
    return answer(model_dir)
"""


@pytest.fixture
def aws(monkeypatch):
    with moto_account(monkeypatch, BUCKET) as endpoint_url:
        yield endpoint_url


def recorded(monkeypatch, operation: str) -> list[dict]:
    requests: list[dict] = []
    original = getattr(SageMakerModelBackend, operation)

    def record(self, **kwargs):
        requests.append(kwargs)
        return original(self, **kwargs)

    monkeypatch.setattr(SageMakerModelBackend, operation, record)
    return requests


def serving_code(tmp_path: Path) -> tuple[Path, Path]:
    """``inference.py`` apart from the training code, importing a ``dependencies`` folder."""
    source = tmp_path / "serving"
    source.mkdir()
    (source / "inference.py").write_text(INFERENCE)
    library = tmp_path / "shared" / "my_library"
    library.mkdir(parents=True)
    (library / "__init__.py").write_text(
        "def answer(model_dir):\n    return 'served from ' + model_dir\n"
    )
    return source, library


def transform(aws: str, tmp_path: Path, workload_framework: str | None, **settings: object) -> None:
    config = SageMakerConfig.from_mapping(
        {
            "role_arn": ROLE,
            "s3_prefix": f"s3://{BUCKET}/runs",
            "region": "us-east-1",
            "endpoint_url": aws,
            **settings,
        }
    )
    model = tmp_path / "model.tar.gz"
    model.write_bytes(placeholder_model_archive())
    source, library = serving_code(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.csv").write_text("1.0,2.0\n3.0,4.0\n")
    spec = TransformJobSpec(
        job_name="serving-code",
        model_artifact=str(model),
        source_dir=str(source),
        entry_point="inference.py",
        input_location=str(tmp_path / "in"),
        output_location=str(tmp_path / "out"),
        framework=workload_framework,
        dependencies=(str(library),),
    )
    SageMakerBackend(config, watch=Watch(clock=FakeClock())).transform(spec, log=lambda _: None)
    predictions = (tmp_path / "out" / "rows.csv.out").read_text().splitlines()
    assert predictions == [PLACEHOLDER_PREDICTION] * 2


def s3_object(aws: str, uri: str) -> bytes:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return boto3.client("s3", endpoint_url=aws).get_object(Bucket=bucket, Key=key)["Body"].read()


def archive_names(body: bytes) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        return set(archive.getnames())


@pytest.mark.parametrize(
    ("framework", "settings"),
    [
        ("pytorch", {"image_uri": GENERIC_IMAGE}),
        (None, {"image_uri": PYTORCH_IMAGE}),
        (None, {"framework": "pytorch", "framework_version": "2.3", "py_version": "py311"}),
        (None, {"image_uri": GENERIC_IMAGE}),
    ],
    ids=["workload-framework", "pytorch-image", "compute-config-framework", "generic-image"],
)
def test_pytorch_model_package_is_served_from_opt_ml_model_code_alone(
    aws, tmp_path, monkeypatch, framework, settings
):
    models = recorded(monkeypatch, "create_model")
    # The image table ships in sagemaker-core, not needed here: the decision reads the config.
    monkeypatch.setattr(
        backend_module, "resolve_image", lambda config, *_: config.image_uri or PYTORCH_IMAGE
    )

    transform(aws, tmp_path, framework, **settings)

    (request,) = models
    container = request["primary_container"]
    environment = container["Environment"]
    assert environment["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert environment["SAGEMAKER_PROGRAM"] == "inference.py"
    body = s3_object(aws, container["ModelDataUrl"])
    assert {
        "PLACEHOLDER.txt",
        "code/inference.py",
        "code/my_library/__init__.py",
    } <= archive_names(body)

    # What PyTorch's serving container does: unpack the model into /opt/ml/model, put
    # /opt/ml/model/code on sys.path and import SAGEMAKER_PROGRAM. It never reads
    # SAGEMAKER_SUBMIT_DIRECTORY, so no other file may be needed.
    received = tmp_path / "received.tar.gz"
    received.write_bytes(body)
    model_dir = unpack_archive(received, tmp_path / "opt" / "ml" / "model")
    module = environment["SAGEMAKER_PROGRAM"].removesuffix(".py")
    loaded = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(model_dir / 'code')!r}); "
            f"import {module}; print({module}.model_fn({str(model_dir)!r}))",
        ],
        cwd=tmp_path / "opt",
        capture_output=True,
        text=True,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == f"served from {model_dir}"


def test_sklearn_model_keeps_its_code_in_the_s3_submit_directory(aws, tmp_path, monkeypatch):
    models = recorded(monkeypatch, "create_model")

    transform(aws, tmp_path, "sklearn", image_uri=SKLEARN_IMAGE)

    (request,) = models
    container = request["primary_container"]
    submit_directory = container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"]
    assert submit_directory.startswith(f"s3://{BUCKET}/runs/code/")
    assert submit_directory.endswith("/sourcedir.tar.gz")
    # Dependencies at the root of sourcedir.tar.gz, which the container extracts to /opt/ml/code.
    assert {"inference.py", "my_library/__init__.py"} <= archive_names(
        s3_object(aws, submit_directory)
    )
    assert archive_names(s3_object(aws, container["ModelDataUrl"])) == {"PLACEHOLDER.txt"}


def test_sklearn_model_under_network_isolation_carries_its_code(aws, tmp_path, monkeypatch):
    models = recorded(monkeypatch, "create_model")

    transform(aws, tmp_path, "sklearn", image_uri=SKLEARN_IMAGE, network_isolation=True)

    (request,) = models
    container = request["primary_container"]
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert {"code/inference.py", "code/my_library/__init__.py"} <= archive_names(
        s3_object(aws, container["ModelDataUrl"])
    )


class Unreachable:
    """Clients that fail the test on any use: a refusal must come before any AWS call."""

    def __getattr__(self, name: str):
        raise AssertionError(f"AWS was called ({name}) before the refusal")


def test_workload_and_compute_config_naming_different_frameworks_is_refused(tmp_path):
    config = SageMakerConfig.from_mapping(
        {
            "role_arn": ROLE,
            "s3_prefix": f"s3://{BUCKET}/runs",
            "framework": "pytorch",
            "framework_version": "2.3",
        }
    )
    source, _ = serving_code(tmp_path)
    spec = TransformJobSpec(
        job_name="disagree",
        model_artifact=str(tmp_path / "model.tar.gz"),
        source_dir=str(source),
        entry_point="inference.py",
        input_location=str(tmp_path / "in"),
        output_location=str(tmp_path / "out"),
        framework="sklearn",
    )

    with pytest.raises(InvalidSpecError) as caught:
        SageMakerBackend(config, clients=Unreachable()).transform(spec, log=lambda _: None)

    assert caught.value.field == "framework"
    assert "'sklearn'" in str(caught.value)
    assert "compute_config.framework 'pytorch'" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_serving_environment_leaves_out_a_region_it_does_not_know():
    # os.environ.get("SAGEMAKER_REGION", default) returns "" for an empty value, not the default.
    assert "SAGEMAKER_REGION" not in serving_environment("inference.py", "/opt/ml/model/code", "")
    assert (
        serving_environment("inference.py", "/opt/ml/model/code", "eu-west-1")["SAGEMAKER_REGION"]
        == "eu-west-1"
    )
