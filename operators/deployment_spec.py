"""The typed ModelDeployment spec; every error names its field (``spec.stages[1].promoteFrom``).

The CRD's schema and CEL rules refuse the same things at ``kubectl apply``; the operator checks
again because a cluster without CEL (and the dev emulator) stores what it is given, and a bad
spec must never deploy. What the CRD cannot know (a pinned version missing from the registry)
is found when the operator looks the version up, and reported the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flywheel.operators.policy import GROUP, VERSION, FieldError, InvalidPolicy

KIND = "ModelDeployment"
PLURAL = "modeldeployments"
DEFAULT_PIPELINE = "flywheel-deployment"
DEFAULT_EXPERIMENT = "flywheel-deployments"
FOLLOW_NEWEST_APPROVED = "newestApproved"
SHIFT_TYPES = ("ALL_AT_ONCE", "CANARY", "LINEAR")
SIZE_TYPES = ("CAPACITY_PERCENT", "INSTANCE_COUNT")
# SageMaker's limits (botocore's UpdateEndpoint DeploymentConfig and AutoRollbackConfiguration).
MAX_ALARMS = 10
MAX_WAIT_SECONDS = 3600
APPROVAL_ANNOTATION = "flywheel.dev/approve.{stage}"

__all__ = ["GROUP", "KIND", "PLURAL", "VERSION", "Deployment", "Stage", "parse_deployment"]


@dataclass(frozen=True)
class Stage:
    name: str
    version: int | None  # pinned; None when following the newest Approved version
    promote_from: str | None
    requires_approval: bool
    soak_minutes: int
    soak_alarms: tuple[str, ...]
    endpoint_name: str
    instance_type: str
    instance_count: int
    traffic: Mapping[str, Any]  # the deploy pipeline's traffic_routing parameter
    rollback_alarms: tuple[str, ...]

    @property
    def approval_annotation(self) -> str:
        return APPROVAL_ANNOTATION.format(stage=self.name)


@dataclass(frozen=True)
class Deployment:
    model: str
    region: str | None
    compute_config: Mapping[str, Any]
    pipeline: str
    pipeline_version: str | None
    experiment: str
    service_account: str | None
    stages: tuple[Stage, ...]


class _Errors:
    def __init__(self) -> None:
        self.found: list[FieldError] = []

    def add(self, field: str, message: str) -> None:
        self.found.append(FieldError(field, message))


def _alarms(raw: Any, field: str, errors: _Errors) -> tuple[str, ...]:
    alarms = tuple(raw or ())
    if len(alarms) > MAX_ALARMS:
        errors.add(field, f"at most {MAX_ALARMS} alarms (SageMaker's limit), got {len(alarms)}")
    for i, alarm in enumerate(alarms):
        if not isinstance(alarm, str) or not alarm.strip() or len(alarm) > 255:
            errors.add(f"{field}[{i}]", "an alarm name of 1 to 255 characters")
    return alarms


def _size(raw: Any, field: str, errors: _Errors) -> dict[str, Any]:
    if not isinstance(raw, Mapping) or raw.get("type") not in SIZE_TYPES:
        errors.add(f"{field}.type", f"one of {', '.join(SIZE_TYPES)}")
        return {}
    value = raw.get("value")
    if not isinstance(value, int) or value < 1:
        errors.add(f"{field}.value", "a whole number of at least 1")
    elif raw["type"] == "CAPACITY_PERCENT" and value > 100:
        errors.add(f"{field}.value", f"a CAPACITY_PERCENT size is at most 100, got {value}")
    return {"type": raw["type"], "value": value}


def _traffic(raw: Mapping[str, Any], field: str, errors: _Errors) -> dict[str, Any]:
    kind = raw.get("type", "ALL_AT_ONCE")
    if kind not in SHIFT_TYPES:
        errors.add(f"{field}.type", f"one of {', '.join(SHIFT_TYPES)}, got {kind!r}")
    traffic: dict[str, Any] = {"type": kind}
    for key, needed in (("canarySize", "CANARY"), ("linearStepSize", "LINEAR")):
        if kind == needed and key not in raw:
            errors.add(f"{field}.{key}", f"a {needed} shift needs {key}")
        elif kind != needed and key in raw:
            errors.add(f"{field}.{key}", f"{key} is for type {needed} only")
        elif key in raw:
            traffic[key] = _size(raw[key], f"{field}.{key}", errors)
    for key in ("waitIntervalSeconds", "terminationWaitSeconds"):
        value = raw.get(key, 300)
        if not isinstance(value, int) or not 0 <= value <= MAX_WAIT_SECONDS:
            errors.add(f"{field}.{key}", f"seconds from 0 to {MAX_WAIT_SECONDS}, got {value!r}")
        traffic[key] = value
    return traffic


def _stage(raw: Mapping[str, Any], field: str, errors: _Errors) -> Stage:
    if ("version" in raw) == ("follow" in raw):
        errors.add(field, "set exactly one of version (a pinned version) and follow")
    version = raw.get("version")
    if version is not None and (not isinstance(version, int) or version < 1):
        errors.add(f"{field}.version", f"a model version (1 or more), got {version!r}")
    if "follow" in raw and raw["follow"] != FOLLOW_NEWEST_APPROVED:
        errors.add(f"{field}.follow", f"only {FOLLOW_NEWEST_APPROVED!r}, got {raw['follow']!r}")
    promote_from = raw.get("promoteFrom")
    for key in ("requiresApproval", "soakMinutes", "soakAlarms"):
        if raw.get(key) and promote_from is None:
            errors.add(f"{field}.{key}", "it gates a promotion: set promoteFrom")
    endpoint = raw.get("endpoint") or {}
    count = endpoint.get("instanceCount", 1)
    if not isinstance(count, int) or count < 1:
        errors.add(f"{field}.endpoint.instanceCount", f"1 or more, got {count!r}")
    return Stage(
        name=str(raw.get("name", "")),
        version=version if isinstance(version, int) else None,
        promote_from=promote_from,
        requires_approval=bool(raw.get("requiresApproval", False)),
        soak_minutes=int(raw.get("soakMinutes", 0)),
        soak_alarms=_alarms(raw.get("soakAlarms"), f"{field}.soakAlarms", errors),
        endpoint_name=str(endpoint.get("name", "")),
        instance_type=str(endpoint.get("instanceType", "ml.m5.large")),
        instance_count=count if isinstance(count, int) else 1,
        traffic=_traffic(
            endpoint.get("trafficShifting") or {}, f"{field}.endpoint.trafficShifting", errors
        ),
        rollback_alarms=_alarms(
            endpoint.get("rollbackAlarms"), f"{field}.endpoint.rollbackAlarms", errors
        ),
    )


def parse_deployment(spec: Mapping[str, Any]) -> Deployment:
    """The typed spec, or :class:`InvalidPolicy` listing every bad field."""
    errors = _Errors()
    model = spec.get("model") or {}
    if not model.get("name"):
        errors.add("spec.model.name", "the registered model's name is required")
    raw_stages = spec.get("stages") or []
    if not raw_stages:
        errors.add("spec.stages", "at least one stage")
    stages = tuple(_stage(s, f"spec.stages[{i}]", errors) for i, s in enumerate(raw_stages))
    seen: dict[str, int] = {}
    endpoints: set[str] = set()
    for i, stage in enumerate(stages):
        field = f"spec.stages[{i}]"
        if stage.name in seen:
            errors.add(f"{field}.name", f"stage {stage.name!r} is listed twice")
        if stage.endpoint_name in endpoints:
            errors.add(f"{field}.endpoint.name", f"{stage.endpoint_name!r} serves another stage")
        if stage.promote_from is not None and stage.promote_from not in seen:
            known = ", ".join(seen) or "none"
            errors.add(
                f"{field}.promoteFrom",
                f"{stage.promote_from!r} is not a stage listed before {stage.name!r} "
                f"(earlier stages: {known})",
            )
        seen[stage.name] = i
        endpoints.add(stage.endpoint_name)
    compute = spec.get("sagemaker") or {}
    for key in ("role_arn", "s3_prefix"):
        if not compute.get(key):
            errors.add(f"spec.sagemaker.{key}", "required by the deploy pipeline")
    if errors.found:
        raise InvalidPolicy(errors.found)
    pipeline = spec.get("pipeline") or {}
    return Deployment(
        model=model["name"],
        region=model.get("region"),
        compute_config=dict(compute),
        pipeline=pipeline.get("name", DEFAULT_PIPELINE),
        pipeline_version=pipeline.get("version"),
        experiment=pipeline.get("experiment", DEFAULT_EXPERIMENT),
        service_account=pipeline.get("serviceAccount"),
        stages=stages,
    )
