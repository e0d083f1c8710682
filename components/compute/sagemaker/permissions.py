"""Check, before any task runs, that the caller may make the calls a SageMaker run makes.

A missing permission otherwise surfaces minutes into a run as a failed task. IAM's policy
simulator answers for the caller's own policies without making the calls: the caller is
``sts:GetCallerIdentity``'s principal (an assumed role's session becomes its role ARN). The
simulator needs ``iam:SimulatePrincipalPolicy``, which a runner may lack, and some servers (moto)
do not offer it; then the check says so in one line and the run goes on: the simulator's own
failure never blocks a run.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from flywheel.components.compute.aws import RETRIES
from flywheel.components.compute.sagemaker.specs import SageMakerConfig
from flywheel.components.errors import InvalidSpecError

# What a run calls, per resource: the same grants manifests/iam/pipeline-runner-policy.json makes
# (tests/sagemaker/test_iam.py holds the two together).
RUNNER_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "{role_arn}": ("iam:PassRole",),
    "arn:aws:sagemaker:{region}:{account}:training-job/*": (
        "sagemaker:CreateTrainingJob",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:StopTrainingJob",
        "sagemaker:AddTags",
    ),
    "arn:aws:sagemaker:{region}:{account}:transform-job/*": (
        "sagemaker:CreateTransformJob",
        "sagemaker:DescribeTransformJob",
        "sagemaker:StopTransformJob",
        "sagemaker:AddTags",
    ),
    "arn:aws:sagemaker:{region}:{account}:model/*": (
        "sagemaker:CreateModel",
        "sagemaker:DeleteModel",
        "sagemaker:AddTags",
    ),
    "arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/*": (
        "logs:DescribeLogStreams",
        "logs:GetLogEvents",
    ),
    "arn:aws:s3:::{bucket}/{prefix}*": ("s3:GetObject", "s3:PutObject"),
}
# iam:PassRole is granted only for SageMaker; the simulator must be told who receives the role.
_PASSED_TO_SAGEMAKER = {
    "ContextKeyName": "iam:PassedToService",
    "ContextKeyValues": ["sagemaker.amazonaws.com"],
    "ContextKeyType": "string",
}
_ASSUMED_ROLE = re.compile(r"^arn:[^:]+:sts::\d+:assumed-role/(?P<role>[^/]+)/")


def principal_arn(caller_arn: str, iam: Any) -> str:
    """The ARN the simulator takes for ``caller_arn``: for an assumed-role session, its role's.

    A session ARN drops the role's path (``role/team/x`` becomes ``assumed-role/x/...``), and the
    simulator knows the role only by its full ARN, so the role is looked up (``iam:GetRole``).
    """
    assumed = _ASSUMED_ROLE.match(caller_arn)
    if assumed is None:
        return caller_arn
    return iam.get_role(RoleName=assumed["role"])["Role"]["Arn"]


def check_permissions(
    config: SageMakerConfig,
    sts: Any,
    iam: Any,
    region: str,
    warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> None:
    """Raise one line naming every denied action and resource; warn and return if unsimulable."""
    identity = sts.get_caller_identity()
    principal = identity["Arn"]
    fields = {
        "role_arn": config.role_arn,
        "region": region,
        "account": identity["Account"],
        "bucket": config.s3_prefix.bucket,
        "prefix": f"{config.s3_prefix.key.rstrip('/')}/" if config.s3_prefix.key else "",
    }
    denied = []
    try:
        principal = principal_arn(identity["Arn"], iam)
    except (ClientError, BotoCoreError, ResponseParserError) as error:
        warn(_not_checked(principal, "iam:GetRole", error))
        return
    for template, actions in RUNNER_PERMISSIONS.items():
        resource = template.format(**fields)
        try:
            pages = iam.get_paginator("simulate_principal_policy").paginate(
                PolicySourceArn=principal,
                ActionNames=list(actions),
                ResourceArns=[resource],
                ContextEntries=[_PASSED_TO_SAGEMAKER],
            )
            results = [result for page in pages for result in page["EvaluationResults"]]
        # moto answers an unimplemented action with an HTML 500, which botocore cannot parse.
        except (ClientError, BotoCoreError, ResponseParserError) as error:
            warn(_not_checked(principal, "iam:SimulatePrincipalPolicy", error))
            return
        denied += [
            f"{principal} may not {result['EvalActionName']} on {resource}"
            for result in results
            if result["EvalDecision"] != "allowed"
        ]
    if denied:
        raise InvalidSpecError("permissions", "; ".join(denied))


def _not_checked(principal: str, action: str, error: Exception) -> str:
    code = (
        error.response.get("Error", {}).get("Code", "error")
        if isinstance(error, ClientError)
        else type(error).__name__
    )
    return f"flywheel: warning: permissions: not checked, {principal} may not run {action} ({code})"


def check_caller_permissions(config: SageMakerConfig) -> None:
    """``check_permissions`` with clients for ``config``'s region and endpoint."""
    session = boto3.session.Session(region_name=config.region)
    region = session.region_name or "us-east-1"

    def client(service: str) -> Any:
        return session.client(
            service, region_name=region, endpoint_url=config.endpoint_url, config=RETRIES
        )

    check_permissions(config, client("sts"), client("iam"), region)
