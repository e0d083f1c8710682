"""Bad input is refused before any AWS call, with the field named; names and polling are pure."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flywheel.components.compute import backend_for
from flywheel.components.compute.backend import TrainingJobSpec, TransformJobSpec
from flywheel.components.compute.sagemaker import (
    AwsClients,
    SageMakerBackend,
    SageMakerConfig,
    Watch,
)
from flywheel.components.compute.sagemaker.endpoint import EndpointSpec
from flywheel.components.compute.sagemaker.naming import (
    MAX_NAME_LENGTH,
    resource_name,
    validate_name,
)
from flywheel.components.compute.sagemaker.polling import PollSchedule
from flywheel.components.contract.metrics import MetricDefinition
from flywheel.components.errors import InvalidSpecError
from flywheel.pipelines.training_run import TrainingRequest, pipeline_arguments

from .conftest import ROLE, base_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "qsar"


def config_error(**overrides: object) -> InvalidSpecError:
    with pytest.raises(InvalidSpecError) as caught:
        base_config(**overrides)
    return caught.value


def test_instance_type_must_exist_for_the_job_kind():
    assert config_error(instance_type="ml.m5.huge").field == "compute_config.instance_type"
    # An endpoint-only type is not a transform type.
    error = config_error(transform_instance_type="ml.t2.medium")
    assert error.field == "compute_config.transform_instance_type"


def test_spot_needs_a_checkpoint_and_a_long_enough_wait():
    assert (
        config_error(spot=True, max_wait_seconds=7200).field == "compute_config.checkpoint_s3_uri"
    )
    error = config_error(
        spot=True, max_run_seconds=7200, max_wait_seconds=3600, checkpoint_s3_uri="s3://b-k/c"
    )
    assert error.field == "compute_config.max_wait_seconds"
    ok = base_config(
        spot=True, max_run_seconds=3600, max_wait_seconds=7200, checkpoint_s3_uri="s3://bkt/ckpt"
    )
    assert ok.spot and str(ok.checkpoint_s3_uri) == "s3://bkt/ckpt"


@pytest.mark.parametrize("uri", ["bucket/key", "s3://", "s3://Bad_Bucket/key", "s3://bucket"])
def test_s3_uri_must_be_bucket_and_key(uri):
    assert config_error(s3_prefix=uri).field == "compute_config.s3_prefix"


def test_unknown_and_mistyped_settings_are_named():
    assert config_error(instance_typo="x").field == "compute_config.instance_typo"
    assert config_error(instance_count="2").field == "compute_config.instance_count"
    assert config_error(subnets=["subnet-0a1b2c3d"]).field == "compute_config.subnets"
    assert config_error(role_arn="flywheel").field == "compute_config.role_arn"


def test_backend_factory_validates_the_compute_config():
    with pytest.raises(InvalidSpecError, match=r"compute_config\.role_arn"):
        backend_for("sagemaker", {"s3_prefix": "s3://bkt/p", "image_uri": "i"})
    assert backend_for("sagemaker", {"role_arn": ROLE, "s3_prefix": "s3://bkt/p", "image_uri": "i"})


def test_names_are_deterministic_and_within_the_limit():
    long_run = "run-" + "x" * 200
    first = resource_name(long_run, "train", {"a": 1, "b": 2})
    assert first == resource_name(long_run, "train", {"b": 2, "a": 1})
    assert first != resource_name(long_run, "train", {"a": 1, "b": 3})
    assert len(first) <= MAX_NAME_LENGTH
    assert validate_name("job_name", first) == first
    with pytest.raises(InvalidSpecError, match="limit is 63"):
        validate_name("job_name", "n" * 64)


def test_poll_schedule_starts_fast_and_settles_under_a_minute():
    schedule = PollSchedule()
    intervals = [schedule.interval(age) for age in range(0, 7200, 30)]
    assert intervals[0] == schedule.first
    assert intervals == sorted(intervals)
    assert max(intervals) == schedule.ceiling <= 60


class _Refusing:
    """A client whose every operation fails the test."""

    def __getattr__(self, name: str):
        raise AssertionError(f"AWS was called ({name}) before the spec was checked")


class _NoCalls:
    region = "us-east-1"
    sagemaker = s3 = logs = _Refusing()


def _backend(**overrides: object) -> SageMakerBackend:
    return SageMakerBackend(base_config(**overrides), clients=_NoCalls(), watch=Watch())


def qsar_spec(tmp_path, **overrides: object) -> TrainingJobSpec:
    """A training job of the QSAR example on a one-row channel."""
    train = tmp_path / "train.csv"
    train.write_text("smiles,pIC50\nCCO,5\n")
    fields = {
        "job_name": "qsar",
        "source_dir": str(EXAMPLE),
        "entry_point": "train.py",
        "channels": {"train": str(train)},
        "hyperparameters": {},
        "output_location": str(tmp_path),
    }
    return TrainingJobSpec(**{**fields, **overrides})


def test_hyperparameter_that_cannot_be_a_string_is_refused_before_any_call(tmp_path):
    spec = qsar_spec(tmp_path, hyperparameters={"n_estimators": object()})
    with pytest.raises(InvalidSpecError) as caught:
        _backend().train(spec, log=lambda _: None)
    assert caught.value.field == "hyperparameters.n_estimators"


def test_refused_transform_creates_no_model(tmp_path):
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"not used")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.csv").write_text("smiles\nCCO\n")
    spec = TransformJobSpec(
        job_name="qsar",
        model_artifact=str(model),
        source_dir=str(EXAMPLE),
        entry_point="train.py",
        input_location=str(tmp_path / "in" / "missing"),
        output_location=str(tmp_path / "out"),
    )
    with pytest.raises(InvalidSpecError) as caught:
        _backend().transform(spec, log=lambda _: None)
    assert caught.value.field == "input_location"


@pytest.mark.parametrize(
    ("overrides", "field", "rule"),
    [
        ({"tags": {f"team-{i}": "x" for i in range(51)}}, "compute_config.tags", "at most 50"),
        ({"tags": {"k" * 129: "x"}}, "compute_config.tags[0].Key", "at most 128"),
        ({"tags": {"team": "a&b"}}, "compute_config.tags[0].Value", "pattern"),
        (
            {"environment": {f"VAR_{i}": "1" for i in range(101)}},
            "compute_config.environment",
            "at most 100",
        ),
        ({"environment": {"LONG": "x" * 513}}, "compute_config.environment['LONG']", "at most 512"),
        ({"volume_kms_key_id": "alias/my key"}, "compute_config.volume_kms_key_id", "pattern"),
        ({"output_kms_key_id": "key;1"}, "compute_config.output_kms_key_id", "pattern"),
        (
            {"subnets": [f"subnet-{i}" for i in range(17)], "security_group_ids": ["sg-1"]},
            "compute_config.subnets",
            "at most 16",
        ),
        (
            {"subnets": ["subnet-0a1b2c3d"], "security_group_ids": [f"sg-{i}" for i in range(6)]},
            "compute_config.security_group_ids",
            "at most 5",
        ),
    ],
    ids=[
        "51-tags",
        "tag-key-length",
        "tag-value-pattern",
        "101-env",
        "env-value-length",
        "kms-volume",
        "kms-output",
        "17-subnets",
        "6-security-groups",
    ],
)
def test_sagemaker_limits_from_the_service_model_are_enforced_on_the_config(overrides, field, rule):
    error = config_error(**overrides)
    assert error.field == field
    assert rule in str(error)


def test_more_metric_definitions_than_sagemaker_allows_are_refused_before_any_call(tmp_path):
    spec = qsar_spec(
        tmp_path,
        metric_definitions=tuple(MetricDefinition(f"m{i}", f"m{i}=([0-9.]+)") for i in range(41)),
    )
    with pytest.raises(InvalidSpecError, match="at most 40") as caught:
        _backend().train(spec, log=lambda _: None)
    assert caught.value.field == "metric_definitions"


def test_more_rollback_alarms_than_sagemaker_allows_are_refused():
    with pytest.raises(InvalidSpecError, match="at most 10") as caught:
        EndpointSpec("qsar-prod", "qsar-model", rollback_alarms=tuple(f"a{i}" for i in range(11)))
    assert caught.value.field == "rollback_alarms"


def readme_sagemaker_yaml() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Run on SageMaker") :]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_readme_sagemaker_yaml_is_a_valid_config_as_written_and_after_kfp():
    raw = yaml.safe_load(readme_sagemaker_yaml())
    config = SageMakerConfig.from_mapping(raw)
    # What the same mapping looks like inside a KFP task: protobuf made every number a float.
    through_kfp = {
        k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in raw.items()
    }

    assert SageMakerConfig.from_mapping(through_kfp) == config
    assert config.spot and config.max_wait_seconds >= config.max_run_seconds


def test_whole_floats_are_integers_and_fractions_are_refused():
    assert base_config(max_run_seconds=3600.0).max_run_seconds == 3600
    error = config_error(max_run_seconds=3600.5)
    assert error.field == "compute_config.max_run_seconds"
    assert "whole number" in str(error)


def test_missing_aws_credentials_fail_before_any_task_in_one_line(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    request = TrainingRequest(
        compute="sagemaker",
        compute_config={
            "role_arn": ROLE,
            "s3_prefix": "s3://flywheel-test/runs",
            "image_uri": "i:1",
        },
    )

    with pytest.raises(InvalidSpecError) as caught:
        pipeline_arguments(request)
    assert caught.value.field == "AWS credentials"
    assert "\n" not in str(caught.value)
    with pytest.raises(InvalidSpecError, match="AWS credentials"):
        AwsClients.connect("us-east-1")


@pytest.mark.parametrize("key", ["split_type", "batch_strategy"])
def test_split_type_and_batch_strategy_are_refused_here_and_sent_to_the_workload(key):
    error = config_error(**{key: "Line"})
    assert str(error) == f"compute_config.{key}: moved to the workload's serving.{key}"


def test_join_source_is_refused_because_no_step_parses_joined_output():
    assert config_error(join_source="Input").field == "compute_config.join_source"


def test_a_sharded_channel_needs_a_file_per_host(tmp_path):
    spec = qsar_spec(tmp_path)
    backend = _backend(
        framework="pytorch",
        framework_version="2.3",
        image_uri=None,
        instance_type="ml.g5.xlarge",
        instance_count=2,
        sharded_channels=["train"],
    )
    with pytest.raises(InvalidSpecError, match="1 file\\(s\\) for 2 hosts") as caught:
        backend.train(spec, log=lambda _: None)
    assert caught.value.field == "compute_config.sharded_channels"


# A multi-host PyTorch config, as SageMaker's torch_distributed takes it.
PYTORCH_HOSTS = {"image_uri": None, "framework": "pytorch", "instance_count": 2}


@pytest.mark.parametrize(
    ("instance_type", "version"),
    [
        ("ml.g5.xlarge", "1.8.1"),
        ("ml.p4d.24xlarge", "1.12.1"),
        ("ml.g5.12xlarge", "2.4"),
        ("ml.trn1.32xlarge", "2.1.0"),
    ],
    ids=["gpu-1.8.1", "gpu-1.12.1", "gpu-2.4-is-2.4.0", "trainium-2.1.0"],
)
def test_torch_distributed_on_a_version_the_sdk_refuses_is_refused_naming_the_version(
    instance_type, version
):
    error = config_error(**PYTORCH_HOSTS, instance_type=instance_type, framework_version=version)

    assert error.field == "compute_config.framework_version"
    assert "torch_distributed" in error.problem and "1.13.1" in error.problem
    assert "\n" not in str(error)


def test_torch_distributed_with_a_python_2_image_is_refused():
    error = config_error(
        **PYTORCH_HOSTS, instance_type="ml.g5.xlarge", framework_version="1.13.1", py_version="py2"
    )
    assert error.field == "compute_config.py_version"


@pytest.mark.parametrize(
    ("instance_type", "version"),
    [
        ("ml.g5.xlarge", "2.3.0"),
        ("ml.g5.xlarge", "2.3"),
        ("ml.p4d.24xlarge", "1.13.1"),
        ("ml.trn1.32xlarge", "2.0.0"),
        ("ml.trn1.2xlarge", "1.11"),
    ],
)
def test_torch_distributed_on_a_supported_version_is_accepted(instance_type, version):
    config = base_config(
        **PYTORCH_HOSTS, instance_type=instance_type, framework_version=version, py_version="py310"
    )
    assert config.instance_count == 2


def test_one_host_is_not_distributed_so_any_pytorch_version_is_accepted():
    config = base_config(
        image_uri=None, framework="pytorch", framework_version="1.8.1", instance_type="ml.g5.xlarge"
    )
    assert config.framework_version == "1.8.1"


def test_more_environment_entries_than_a_batch_transform_takes_are_refused_before_training():
    error = config_error(environment={f"VAR_{i}": "1" for i in range(20)})

    assert error.field == "compute_config.environment"
    assert "at most 16" in error.problem and "TransformEnvironmentMap" in error.problem
    assert len(base_config(environment={f"VAR_{i}": "1" for i in range(16)}).environment) == 16


def test_an_environment_value_longer_than_a_processing_job_takes_is_refused():
    error = config_error(environment={"NOTE": "x" * 257})

    assert error.field == "compute_config.environment['NOTE']"
    assert "at most 256" in error.problem


@pytest.mark.parametrize("key", ["aws:team", "AWS:team", "Aws:cost-centre"])
def test_tag_keys_with_the_reserved_aws_prefix_are_refused_in_any_case(key):
    error = config_error(tags={"team": "chem", key: "x"})

    assert error.field == "compute_config.tags"
    assert repr(key) in error.problem and "reserved" in error.problem


def test_a_tag_value_may_start_with_aws():
    assert base_config(tags={"origin": "aws:marketplace"}).tags == {"origin": "aws:marketplace"}


def test_tags_that_leave_no_room_for_flywheels_own_tag_are_refused():
    error = config_error(tags={f"team-{i}": "x" for i in range(50)})

    assert error.field == "compute_config.tags"
    assert "at most 49" in error.problem
    assert len(base_config(tags={f"team-{i}": "x" for i in range(49)}).tags) == 49


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("subnets", "subnet-1"),
        ("subnets", "subnet-0abc"),
        ("subnets", "subnet-0A1B2C3D"),
        ("subnets", "sg-0a1b2c3d"),
        ("subnets", "subnet-0a1b2c3d4e5f6a7b"),
        ("security_group_ids", "sg-1"),
        ("security_group_ids", "sg-zzzzzzzz"),
        ("security_group_ids", "subnet-0a1b2c3d"),
    ],
)
def test_malformed_subnet_and_security_group_ids_are_refused_naming_the_entry(key, value):
    vpc = {"subnets": ["subnet-0a1b2c3d"], "security_group_ids": ["sg-0a1b2c3d"]}
    error = config_error(**{**vpc, key: [value]})

    assert error.field == f"compute_config.{key}[0]"
    assert "8 or 17" in error.problem


def test_subnet_and_security_group_ids_of_8_and_17_hex_digits_are_accepted():
    config = base_config(
        subnets=["subnet-0a1b2c3d", "subnet-0123456789abcdef0"],
        security_group_ids=["sg-0a1b2c3d", "sg-0123456789abcdef0"],
    )
    assert config.vpc_config == {
        "Subnets": ["subnet-0a1b2c3d", "subnet-0123456789abcdef0"],
        "SecurityGroupIds": ["sg-0a1b2c3d", "sg-0123456789abcdef0"],
    }
