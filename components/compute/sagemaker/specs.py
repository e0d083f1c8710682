"""SageMaker settings as typed, checked values: every problem is found before any AWS call.

``compute_config`` arrives as a plain dict (a KFP pipeline parameter, or a YAML file given to
``flywheel run training --compute-config``). :meth:`SageMakerConfig.from_mapping` refuses unknown
keys, wrong types and values SageMaker would refuse, naming the field; code past this point trusts
the config. Allowed instance types come from botocore's copy of the SageMaker service model, so
the list is the real one for each job kind and needs no network.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import botocore.session

from flywheel.components.compute.sagemaker.distribution import check_torch_distributed
from flywheel.components.compute.sagemaker.s3 import S3Uri, parse_s3_uri
from flywheel.components.compute.sagemaker.validation import check_value, service_model
from flywheel.components.errors import InvalidSpecError

JobKind = Literal["training", "transform", "endpoint", "processing"]
_INSTANCE_SHAPES: dict[str, str] = {
    "training": "TrainingInstanceType",
    "transform": "TransformInstanceType",
    "endpoint": "ProductionVariantInstanceType",
    "processing": "ProcessingInstanceType",
}
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
MAX_RUN_LIMIT = 28 * 24 * 3600  # SageMaker's longest MaxRuntimeInSeconds
MAX_KEEP_ALIVE = 3600


@functools.cache
def allowed_instance_types(kind: JobKind) -> frozenset[str]:
    """The instance types SageMaker accepts for a job kind, from the bundled service model."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    return frozenset(model.shape_for(_INSTANCE_SHAPES[kind]).enum)


def check_instance_type(field_name: str, value: str, kind: JobKind) -> str:
    if value not in allowed_instance_types(kind):
        close = sorted(
            t for t in allowed_instance_types(kind) if t.split(".")[1:2] == value.split(".")[1:2]
        )
        hint = f"; did you mean one of {', '.join(close[:6])}" if close else ""
        raise InvalidSpecError(
            field_name, f"{value!r} is not a SageMaker {kind} instance type{hint}"
        )
    return value


def check_hyperparameters(values: Mapping[str, object]) -> dict[str, str]:
    """SageMaker takes string hyperparameters only; refuse anything else, and what breaks its limits."""
    for name, value in values.items():
        if not isinstance(value, str):
            raise InvalidSpecError(
                f"hyperparameters.{name}", f"must be a string after coercion, got {value!r}"
            )
    return dict(check_value("sagemaker", "HyperParameters", dict(values), "hyperparameters"))


def _typed(raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = raw.get(key, default)
    if value is default:
        return value
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise InvalidSpecError(f"compute_config.{key}", f"expected a number, got {value!r}")
    if kind is int and isinstance(value, float):
        # KFP passes a dict parameter through protobuf's Struct, which turns every number into a
        # float: 3600 arrives as 3600.0. A whole float is the integer it was; others are refused.
        if not value.is_integer():
            raise InvalidSpecError(
                f"compute_config.{key}", f"expected a whole number, got {value!r}"
            )
        return int(value)
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InvalidSpecError(f"compute_config.{key}", f"expected {names}, got {value!r}")
    return value


def _in_range(key: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidSpecError(f"compute_config.{key}", f"must be {low}-{high}, got {value}")
    return value


def _choice(key: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidSpecError(f"compute_config.{key}", f"{value!r} is not one of {list(choices)}")
    return value


def _strings(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidSpecError(f"compute_config.{key}", "must map strings to strings")
    return dict(value)


def _string_list(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidSpecError(f"compute_config.{key}", "must be a list of strings")
    return tuple(value)


def _meets(key: str, shape: str, value: Any) -> Any:
    """``value`` if SageMaker's ``shape`` accepts it (limits from the service model); else refused."""
    if value:
        check_value("sagemaker", shape, value, f"compute_config.{key}")
    return value


def _kms_key(raw: Mapping[str, Any], key: str) -> str | None:
    return _meets(key, "KmsKeyId", _typed(raw, key, str, None))


# AWS reserves tag keys that start with aws:, in any case ("Tagging AWS resources", which
# SageMaker's Tag shape links to); the service refuses them, though the model's pattern allows them.
RESERVED_TAG_PREFIX = "aws:"
# Each resource Flywheel creates carries one tag of its own (flywheel:job or flywheel:model), which
# must fit in SageMaker's TagList beside the user's.
FLYWHEEL_TAG_COUNT = 1


def _tags(raw: Mapping[str, Any]) -> dict[str, str]:
    """The user's tags, if SageMaker takes them with Flywheel's own tag added to each resource."""
    tags = _strings("tags", raw.get("tags", {}))
    _meets("tags", "TagList", [{"Key": k, "Value": v} for k, v in tags.items()])
    for key in tags:
        if key.lower().startswith(RESERVED_TAG_PREFIX):
            raise InvalidSpecError(
                "compute_config.tags",
                f"key {key!r}: the aws: prefix (in any case) is reserved for AWS; "
                "SageMaker refuses it",
            )
    most = service_model("sagemaker").shape_for("TagList").metadata["max"] - FLYWHEEL_TAG_COUNT
    if len(tags) > most:
        raise InvalidSpecError(
            "compute_config.tags",
            f"has {len(tags)} entries; at most {most} allowed (SageMaker's TagList holds "
            f"{most + FLYWHEEL_TAG_COUNT}, and Flywheel adds flywheel:job or flywheel:model)",
        )
    return tags


# botocore's SubnetId and SecurityGroupId patterns ([-0-9a-zA-Z]+) let "subnet-1" through to fail
# at the call; a real id is its prefix and 8 or 17 lowercase hex digits (EC2's resource ids).
_VPC_ID_PREFIXES = {"subnets": "subnet", "security_group_ids": "sg"}


def _vpc_ids(raw: Mapping[str, Any], key: str, shape: str) -> tuple[str, ...]:
    """``subnets`` or ``security_group_ids``: SageMaker's counts, and each id in EC2's form."""
    values = _meets(key, shape, _string_list(key, raw.get(key, [])))
    prefix = _VPC_ID_PREFIXES[key]
    for index, value in enumerate(values):
        if not re.fullmatch(rf"{prefix}-([0-9a-f]{{8}}|[0-9a-f]{{17}})", value):
            raise InvalidSpecError(
                f"compute_config.{key}[{index}]",
                f"{value!r} is not an id of the form {prefix}- and 8 or 17 lowercase hex digits",
            )
    return values


# compute_config.environment goes into every job the config runs, so it must meet each kind's map:
# training's and processing's (100 entries), and batch transform's (16). Flywheel adds nothing to
# these maps (its serving entries go to the model's own Environment), so the count is the config's.
ENVIRONMENT_SHAPES = (
    "TrainingEnvironmentMap",
    "TransformEnvironmentMap",
    "ProcessingEnvironmentMap",
)


def _environment(raw: Mapping[str, Any]) -> dict[str, str]:
    """Refused here, not by the transform after training has run, when any job kind would refuse it."""
    environment = _strings("environment", raw.get("environment", {}))
    for shape in ENVIRONMENT_SHAPES:
        _meets("environment", shape, environment)
    return environment


# CreateTransformJob's cap on MaxConcurrentTransforms * MaxPayloadInMB, in MB (API Reference).
MAX_CONCURRENT_PAYLOAD_MB = 100


def _check_transform_payload(max_concurrent: int, max_payload_mb: int) -> None:
    """SageMaker refuses a product over 100 MB only when the transform is created, after training."""
    if max_concurrent * max_payload_mb > MAX_CONCURRENT_PAYLOAD_MB:
        raise InvalidSpecError(
            "compute_config.max_concurrent_transforms",
            f"{max_concurrent} x compute_config.max_payload_mb {max_payload_mb} is "
            f"{max_concurrent * max_payload_mb} MB; SageMaker allows at most "
            f"{MAX_CONCURRENT_PAYLOAD_MB} MB (MaxConcurrentTransforms x MaxPayloadInMB): "
            "lower either",
        )


# Keys that once lived here and now belong to the workload, since every backend honours them.
MOVED_TO_WORKLOAD = ("split_type", "batch_strategy")


@dataclass(frozen=True)
class SageMakerConfig:
    """Where and how SageMaker runs jobs for one pipeline run (the README lists every key)."""

    role_arn: str
    s3_prefix: S3Uri
    region: str | None = None
    endpoint_url: str | None = None
    image_uri: str | None = None
    framework: str | None = None
    framework_version: str | None = None
    py_version: str | None = None
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    volume_size_gb: int = 30
    max_run_seconds: int = 24 * 3600
    spot: bool = False
    max_wait_seconds: int | None = None
    checkpoint_s3_uri: S3Uri | None = None
    keep_alive_seconds: int = 0
    input_mode: str = "File"
    sharded_channels: tuple[str, ...] = ()
    subnets: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    volume_kms_key_id: str | None = None
    output_kms_key_id: str | None = None
    network_isolation: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    transform_instance_type: str = "ml.m5.large"
    transform_instance_count: int = 1
    max_concurrent_transforms: int = 0
    max_payload_mb: int = 6
    # Processing jobs take their host count from the spec (a script shards its own inputs).
    processing_instance_type: str = "ml.m5.xlarge"

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> SageMakerConfig:
        """Check a ``compute_config`` dict; every refusal names ``compute_config.<key>``."""
        for key in MOVED_TO_WORKLOAD:
            if key in raw:
                raise InvalidSpecError(
                    f"compute_config.{key}", f"moved to the workload's serving.{key}"
                )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InvalidSpecError(
                f"compute_config.{unknown[0]}",
                f"unknown setting; allowed: {', '.join(sorted(known))}",
            )
        role_arn = _typed(raw, "role_arn", str, None)
        if role_arn is None or not _ROLE_ARN.match(role_arn):
            raise InvalidSpecError(
                "compute_config.role_arn",
                f"required, an IAM role ARN (arn:aws:iam::<account>:role/<name>); got {role_arn!r}",
            )
        if "s3_prefix" not in raw:
            raise InvalidSpecError("compute_config.s3_prefix", "required, s3://bucket/prefix")
        region = _typed(raw, "region", str, None)
        if region is not None and not _REGION.match(region):
            raise InvalidSpecError("compute_config.region", f"{region!r} is not an AWS region")
        image_uri = _typed(raw, "image_uri", str, None)
        framework = _typed(raw, "framework", str, None)
        framework_version = _typed(raw, "framework_version", str, None)
        if (image_uri is None) == (framework is None):
            raise InvalidSpecError(
                "compute_config.image_uri",
                "give either image_uri or framework (with framework_version)",
            )
        if framework is not None and framework_version is None:
            raise InvalidSpecError(
                "compute_config.framework_version", f"required with framework {framework!r}"
            )
        spot = _typed(raw, "spot", bool, False)
        max_run = _in_range(
            "max_run_seconds", _typed(raw, "max_run_seconds", int, 24 * 3600), 1, MAX_RUN_LIMIT
        )
        max_wait = _typed(raw, "max_wait_seconds", int, None)
        checkpoint = raw.get("checkpoint_s3_uri")
        if spot:
            if checkpoint is None:
                raise InvalidSpecError(
                    "compute_config.checkpoint_s3_uri",
                    "managed spot needs a checkpoint location, or an interrupted job starts over",
                )
            if max_wait is None or max_wait < max_run:
                raise InvalidSpecError(
                    "compute_config.max_wait_seconds",
                    f"managed spot needs max_wait_seconds >= max_run_seconds ({max_run}), got {max_wait}",
                )
        elif max_wait is not None:
            raise InvalidSpecError(
                "compute_config.max_wait_seconds", "only applies with spot: true"
            )
        instance_count = _in_range("instance_count", _typed(raw, "instance_count", int, 1), 1, 100)
        instance_type = check_instance_type(
            "compute_config.instance_type",
            _typed(raw, "instance_type", str, "ml.m5.large"),
            "training",
        )
        py_version = _typed(raw, "py_version", str, None)
        if instance_count > 1:
            check_torch_distributed(
                instance_count, framework, framework_version, py_version, instance_type
            )
        subnets = _vpc_ids(raw, "subnets", "Subnets")
        groups = _vpc_ids(raw, "security_group_ids", "VpcSecurityGroupIds")
        tags = _tags(raw)
        if bool(subnets) != bool(groups):
            raise InvalidSpecError(
                "compute_config.subnets", "a VPC config needs both subnets and security_group_ids"
            )
        max_concurrent = _in_range(
            "max_concurrent_transforms",
            _typed(raw, "max_concurrent_transforms", int, 0),
            0,
            1000,
        )
        max_payload = _in_range("max_payload_mb", _typed(raw, "max_payload_mb", int, 6), 0, 100)
        _check_transform_payload(max_concurrent, max_payload)
        return cls(
            role_arn=role_arn,
            s3_prefix=parse_s3_uri("compute_config.s3_prefix", raw["s3_prefix"]),
            region=region,
            endpoint_url=_typed(raw, "endpoint_url", str, None),
            image_uri=image_uri,
            framework=framework,
            framework_version=framework_version,
            py_version=py_version,
            instance_type=instance_type,
            instance_count=instance_count,
            volume_size_gb=_in_range(
                "volume_size_gb", _typed(raw, "volume_size_gb", int, 30), 1, 16384
            ),
            max_run_seconds=max_run,
            spot=spot,
            max_wait_seconds=max_wait,
            checkpoint_s3_uri=None
            if checkpoint is None
            else parse_s3_uri("compute_config.checkpoint_s3_uri", checkpoint),
            keep_alive_seconds=_in_range(
                "keep_alive_seconds", _typed(raw, "keep_alive_seconds", int, 0), 0, MAX_KEEP_ALIVE
            ),
            input_mode=_choice(
                "input_mode", _typed(raw, "input_mode", str, "File"), ("File", "FastFile")
            ),
            sharded_channels=_string_list("sharded_channels", raw.get("sharded_channels", [])),
            subnets=subnets,
            security_group_ids=groups,
            volume_kms_key_id=_kms_key(raw, "volume_kms_key_id"),
            output_kms_key_id=_kms_key(raw, "output_kms_key_id"),
            network_isolation=_typed(raw, "network_isolation", bool, False),
            tags=tags,
            environment=_environment(raw),
            transform_instance_type=check_instance_type(
                "compute_config.transform_instance_type",
                _typed(raw, "transform_instance_type", str, "ml.m5.large"),
                "transform",
            ),
            transform_instance_count=_in_range(
                "transform_instance_count", _typed(raw, "transform_instance_count", int, 1), 1, 100
            ),
            max_concurrent_transforms=max_concurrent,
            max_payload_mb=max_payload,
            processing_instance_type=check_instance_type(
                "compute_config.processing_instance_type",
                _typed(raw, "processing_instance_type", str, "ml.m5.xlarge"),
                "processing",
            ),
        )

    @property
    def vpc_config(self) -> dict[str, list[str]] | None:
        if not self.subnets:
            return None
        return {"Subnets": list(self.subnets), "SecurityGroupIds": list(self.security_group_ids)}

    def tag_list(self, extra: Mapping[str, str] | None = None) -> list[dict[str, str]]:
        """Tags in SageMaker's shape, sorted so the request (and its digest) is stable."""
        merged = {**self.tags, **(extra or {})}
        return [{"Key": key, "Value": merged[key]} for key in sorted(merged)]
