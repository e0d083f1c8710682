"""The CreateTrainingJob request: the same code gives the same name; each job its own checkpoints."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from flywheel.components.compute.backend import TrainingJobSpec
from flywheel.components.compute.sagemaker.s3 import S3Uri
from flywheel.components.compute.sagemaker.training import training_request
from flywheel.components.contract.packaging import pack_source, sha256_of_file
from flywheel.components.errors import InvalidSpecError

from .conftest import REGION, base_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "qsar"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def spec(job_name: str = "qsar") -> TrainingJobSpec:
    return TrainingJobSpec(
        job_name=job_name,
        source_dir=str(EXAMPLE),
        entry_point="train.py",
        channels={"train": "s3://flywheel-test/data/train"},
        hyperparameters={"max_features": "sqrt"},
        output_location="s3://flywheel-test/out",
    )


def request_for(code: Path, job_name: str = "qsar", **config: object) -> dict:
    return training_request(
        spec(job_name),
        base_config(**config),
        image=IMAGE,
        code=S3Uri("flywheel-test", f"code/{sha256_of_file(code)[:16]}/sourcedir.tar.gz"),
        channels={"train": S3Uri("flywheel-test", "data/train")},
        region=REGION,
    )


def test_same_code_packs_to_the_same_digest_and_job_name_on_another_day(tmp_path):
    copy = shutil.copytree(EXAMPLE, tmp_path / "copy", ignore=shutil.ignore_patterns("*.png"))
    first = pack_source(copy, tmp_path / "first")
    # Another checkout: other times, other permissions on a non-executable file, a stray cache.
    for path in copy.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))
    (copy / "train.py").chmod(0o600)
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0")
    second = pack_source(copy, tmp_path / "second")

    assert sha256_of_file(first) == sha256_of_file(second)
    assert request_for(first)["TrainingJobName"] == request_for(second)["TrainingJobName"]


def test_each_spot_job_checkpoints_under_its_own_name(tmp_path):
    code = pack_source(EXAMPLE, tmp_path)
    spot = {
        "spot": True,
        "max_run_seconds": 3600,
        "max_wait_seconds": 7200,
        "checkpoint_s3_uri": "s3://flywheel-test/checkpoints",
    }
    requests = [request_for(code, name, **spot) for name in ("qsar-a", "qsar-b")]

    prefixes = [r["CheckpointConfig"]["S3Uri"] for r in requests]
    assert prefixes == [f"s3://flywheel-test/checkpoints/{r['TrainingJobName']}" for r in requests]
    assert prefixes[0] != prefixes[1]


def test_network_isolation_sends_the_code_through_a_code_channel(tmp_path):
    code = pack_source(EXAMPLE, tmp_path)
    request = request_for(code, network_isolation=True)

    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in request["InputDataConfig"]
    }
    assert channels["code"]["S3Uri"].endswith("/sourcedir.tar.gz")
    assert request["HyperParameters"]["sagemaker_submit_directory"] == (
        '"/opt/ml/input/data/code/sourcedir.tar.gz"'
    )
    assert request["EnableNetworkIsolation"] is True


def test_several_pytorch_hosts_train_with_torch_distributed(tmp_path):
    code = pack_source(EXAMPLE, tmp_path)
    request = request_for(
        code,
        image_uri=None,
        framework="pytorch",
        framework_version="2.3",
        instance_type="ml.g5.xlarge",
        instance_count=2,
    )

    assert request["ResourceConfig"]["InstanceCount"] == 2
    assert request["HyperParameters"]["sagemaker_torch_distributed_enabled"] == "true"


def test_several_hosts_without_a_distributed_framework_are_refused():
    with pytest.raises(InvalidSpecError, match="independent copy") as caught:
        base_config(instance_count=2)
    assert caught.value.field == "compute_config.instance_count"


def test_torch_distributed_on_cpu_instances_is_refused_as_sagemaker_would():
    with pytest.raises(InvalidSpecError, match="GPU") as caught:
        base_config(image_uri=None, framework="pytorch", framework_version="2.3", instance_count=2)
    assert caught.value.field == "compute_config.instance_type"


def test_a_hyperparameter_over_sagemakers_value_limit_is_refused_naming_it(tmp_path):
    code = pack_source(EXAMPLE, tmp_path)
    long_spec = replace(spec(), hyperparameters={"note": "x" * 2501})
    with pytest.raises(InvalidSpecError, match="at most 2500") as caught:
        training_request(
            long_spec,
            base_config(),
            image=IMAGE,
            code=S3Uri("flywheel-test", f"code/{sha256_of_file(code)[:16]}/sourcedir.tar.gz"),
            channels={"train": S3Uri("flywheel-test", "data/train")},
            region=REGION,
        )
    assert caught.value.field == "hyperparameters['note']"
