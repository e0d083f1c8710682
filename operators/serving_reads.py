"""What a ModelDeployment's stages observe in AWS: the target version in the registry, the version
an endpoint serves, and whether soak alarms are OK. Blocking boto3 calls; run them on the
operator's AWS worker pool.

The served version is read from SageMaker itself (endpoint -> endpoint config -> model -> its
model package), never assumed from a run's success: after an auto-rollback the endpoint serves
the old fleet, and that is what status must say.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from flywheel.operators.deployment_spec import Stage

NOT_FOUND_CODES = frozenset({"ValidationException", "ResourceNotFound"})


def _approved(sagemaker: Any, group: str) -> list[dict[str, Any]]:
    pages = sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group, ModelApprovalStatus="Approved"
    )
    return [summary for page in pages for summary in page["ModelPackageSummaryList"]]


def _version_of(arn: str) -> int:
    return int(arn.rsplit("/", 1)[1])


def target(sagemaker: Any, group: str, stage: Stage, field: str = "") -> dict[str, Any]:
    """The stage's target: ``{ok, version, arn}``, or ``{ok: False, reason, message}``.

    Only Approved versions are served, pinned or followed: a pinned version that is missing, or
    not Approved, is reported and nothing is deployed. ``field`` is the stage's path in the spec
    (``spec.stages[1]``), for the message.
    """
    field = field or f"stage {stage.name}"
    try:
        approved = {_version_of(s["ModelPackageArn"]): s for s in _approved(sagemaker, group)}
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", str(error))
        return {"ok": False, "reason": "RegistryError", "message": f"{code}: {message}"}
    if stage.version is None:
        if not approved:
            return {
                "ok": False,
                "reason": "NoApprovedVersion",
                "message": f"{group} has no Approved version yet",
            }
        version = max(approved)
        return {"ok": True, "version": version, "arn": approved[version]["ModelPackageArn"]}
    if stage.version in approved:
        arn = approved[stage.version]["ModelPackageArn"]
        return {"ok": True, "version": stage.version, "arn": arn}
    pages = sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group)
    every = {
        _version_of(s["ModelPackageArn"]): s.get("ModelApprovalStatus")
        for page in pages
        for s in page["ModelPackageSummaryList"]
    }
    if stage.version in every:
        return {
            "ok": False,
            "reason": "NotApproved",
            "version": stage.version,
            "message": f"{field}.version: version {stage.version} of {group} is "
            f"{every[stage.version]}; only Approved versions are deployed",
        }
    return {
        "ok": False,
        "reason": "VersionNotFound",
        "version": stage.version,
        "message": f"{field}.version: {group} has no version {stage.version} "
        f"(versions: {', '.join(map(str, sorted(every))) or 'none'})",
    }


def served(sagemaker: Any, endpoint_name: str) -> dict[str, Any]:
    """What the endpoint serves: ``{status, servedVersion, failureReason}``; ``{}`` if it does not
    exist."""
    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in NOT_FOUND_CODES:
            return {}
        raise
    found: dict[str, Any] = {"status": endpoint["EndpointStatus"]}
    if endpoint.get("FailureReason"):
        found["failureReason"] = endpoint["FailureReason"]
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    containers = [model.get("PrimaryContainer") or {}, *(model.get("Containers") or [])]
    packages = [c["ModelPackageName"] for c in containers if c.get("ModelPackageName")]
    if packages:
        found["servedVersion"] = _version_of(packages[0])
    return found


def alarms_ok(cloudwatch: Any, names: Sequence[str]) -> dict[str, Any]:
    """``{ok, message}``: every alarm exists and none is in ALARM (INSUFFICIENT_DATA is no alarm)."""
    found = cloudwatch.describe_alarms(AlarmNames=list(names))["MetricAlarms"]
    states = {a["AlarmName"]: a["StateValue"] for a in found}
    missing = [n for n in names if n not in states]
    firing = [n for n in names if states.get(n) == "ALARM"]
    if missing:
        return {"ok": False, "message": f"alarms not found: {', '.join(missing)}"}
    if firing:
        return {"ok": False, "message": f"in ALARM: {', '.join(firing)}"}
    return {"ok": True, "message": "all soak alarms OK"}
