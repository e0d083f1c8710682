"""Check, before any task runs, that the caller may make the calls a SageMaker run makes.

A missing permission otherwise surfaces minutes into a run as a failed task. IAM's policy
simulator answers for the caller's own policies without making the calls: the caller is
``sts:GetCallerIdentity``'s principal (an assumed role's session becomes its role ARN). What is
asked for is ``grants.OPERATIONS``, the table of every call on the SageMaker path, limited to what
this run does (:class:`RunUses`) and filled in with the resources it will touch. A grant that
SageMaker uses the execution role for (the rollback alarms) is simulated for that role.

The simulator needs ``iam:SimulatePrincipalPolicy``, which a runner may lack, and some servers
(moto) do not offer it; then the check says so in one line and the run goes on: the simulator's
own failure never blocks a run. Credentials that AWS rejects do block it, in one line.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from flywheel.components.compute.aws import RETRIES
from flywheel.components.compute.sagemaker.clients import credential_problem, session_for
from flywheel.components.compute.sagemaker.grants import Principal, Scope, Simulation, simulations
from flywheel.components.compute.sagemaker.s3 import parse_s3_uri
from flywheel.components.compute.sagemaker.specs import SageMakerConfig
from flywheel.components.errors import InvalidSpecError

_ASSUMED_ROLE = re.compile(r"^arn:[^:]+:sts::\d+:assumed-role/(?P<role>[^/]+)/")
_REGISTRY_SCHEME = "sagemaker://"


@dataclass(frozen=True)
class RunUses:
    """What a run does besides its jobs, so that the check asks for those calls too.

    Names fill the resource ARNs the simulator is asked about; SageMaker writes names lower-case
    in its ARNs, and so do we. An empty name asks about any resource of its kind.
    """

    registry: str = ""  # a sagemaker://<region>/<bucket>/<prefix> registry URI; others need no AWS
    model_name: str = ""  # the registry's model: its model package group
    endpoint_name: str = ""  # deploy_endpoint's endpoint
    rollback_alarms: tuple[str, ...] = ()  # deploy_endpoint's auto-rollback alarms
    metrics_namespace: str = ""  # the evaluation's CloudWatch namespace
    tuning: bool = False  # a SageMaker Automatic Model Tuning job (``tune_on_sagemaker``)

    def scopes(self) -> list[Scope]:
        scopes: list[Scope] = ["jobs"]
        if self.tuning:
            scopes.append("tuning")
        if self.registry.startswith(_REGISTRY_SCHEME):
            scopes.append("registry")
        if self.endpoint_name:
            scopes.append("endpoint")
        if self.rollback_alarms:
            scopes.append("rollback")
        if self.metrics_namespace:
            scopes.append("metrics")
        return scopes


def principal_arn(caller_arn: str, iam: Any) -> str:
    """The ARN the simulator takes for ``caller_arn``: for an assumed-role session, its role's.

    A session ARN drops the role's path (``role/team/x`` becomes ``assumed-role/x/...``), and the
    simulator knows the role only by its full ARN, so the role is looked up (``iam:GetRole``).
    """
    assumed = _ASSUMED_ROLE.match(caller_arn)
    if assumed is None:
        return caller_arn
    return iam.get_role(RoleName=assumed["role"])["Role"]["Arn"]


def _folder(key: str) -> str:
    """A key prefix as the run lists it: ``flywheel/``, or nothing for a whole bucket."""
    return f"{key.rstrip('/')}/" if key else ""


def resource_fields(
    config: SageMakerConfig, region: str, account: str, uses: RunUses
) -> dict[str, str | tuple[str, ...]]:
    """What fills the grants' ARN templates for this run."""
    registry = {
        "registry_region": region,
        "registry_bucket": config.s3_prefix.bucket,
        "registry_prefix": _folder(config.s3_prefix.key),
    }
    if uses.registry.startswith(_REGISTRY_SCHEME):
        parts = urlsplit(uses.registry)
        staging = parse_s3_uri("registry", f"s3:/{parts.path}")
        registry = {
            "registry_region": parts.netloc or region,
            "registry_bucket": staging.bucket,
            "registry_prefix": _folder(staging.key),
        }
    return {
        "role_arn": config.role_arn,
        "region": region,
        "account": account,
        "bucket": config.s3_prefix.bucket,
        "prefix": _folder(config.s3_prefix.key),
        **registry,
        "model": uses.model_name.lower() or "*",
        "endpoint": uses.endpoint_name.lower() or "*",
        "alarm": tuple(uses.rollback_alarms),
        "namespace": uses.metrics_namespace,
    }


def simulation_plan(
    config: SageMakerConfig, region: str, account: str, uses: RunUses
) -> list[tuple[Simulation, tuple[str, ...]]]:
    """The simulations the check asks for, in order: the caller's own first, since a runner may
    not be allowed to simulate the execution role, and that must not hide its own gaps."""
    asked = simulations(uses.scopes(), resource_fields(config, region, account, uses))
    return sorted(asked.items(), key=lambda item: item[0][0] != "caller")


def check_permissions(
    config: SageMakerConfig,
    sts: Any,
    iam: Any,
    region: str,
    uses: RunUses = RunUses(),
    warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> None:
    """Raise one line naming every denied action and resource; warn and return if unsimulable."""
    try:
        identity = sts.get_caller_identity()
    except (ClientError, BotoCoreError) as error:
        problem = credential_problem(error)
        if problem is None:
            raise
        raise problem from None
    caller = identity["Arn"]
    try:
        caller = principal_arn(identity["Arn"], iam)
    except (ClientError, BotoCoreError, ResponseParserError) as error:
        warn(_not_checked(caller, "iam:GetRole", error))
        return
    principals: dict[Principal, str] = {"caller": caller, "execution_role": config.role_arn}
    denied: list[str] = []
    unsimulable: set[Principal] = set()
    for (who, resource, context), actions in simulation_plan(
        config, region, identity["Account"], uses
    ):
        if who in unsimulable:
            continue
        principal = principals[who]
        try:
            results = _simulate(iam, principal, actions, resource, context)
        # moto answers an unimplemented action with an HTML 500, which botocore cannot parse.
        except (ClientError, BotoCoreError, ResponseParserError) as error:
            warn(_not_checked(caller, "iam:SimulatePrincipalPolicy", error, principal))
            # A caller who may not simulate itself is not asked to simulate another either.
            unsimulable |= {"caller", "execution_role"} if who == "caller" else {who}
            continue
        denied += [
            f"{principal} may not {result['EvalActionName']} on {resource}"
            for result in results
            if result["EvalDecision"] != "allowed"
        ]
    if denied:
        raise InvalidSpecError("permissions", "; ".join(denied))


def _simulate(
    iam: Any,
    principal: str,
    actions: tuple[str, ...],
    resource: str,
    context: tuple[tuple[str, str], ...],
) -> list[dict[str, Any]]:
    pages = iam.get_paginator("simulate_principal_policy").paginate(
        PolicySourceArn=principal,
        ActionNames=list(actions),
        ResourceArns=[resource],
        ContextEntries=[
            {"ContextKeyName": key, "ContextKeyValues": [value], "ContextKeyType": "string"}
            for key, value in context
        ],
    )
    return [result for page in pages for result in page["EvaluationResults"]]


def _not_checked(caller: str, action: str, error: Exception, subject: str | None = None) -> str:
    code = (
        error.response.get("Error", {}).get("Code", "error")
        if isinstance(error, ClientError)
        else type(error).__name__
    )
    whose = "" if subject in (None, caller) else f" for {subject}"
    return (
        f"flywheel: warning: permissions: not checked{whose}, {caller} may not run {action} "
        f"({code})"
    )


def check_caller_permissions(config: SageMakerConfig, uses: RunUses = RunUses()) -> None:
    """``check_permissions`` with clients for ``config``'s region and endpoint."""
    session = session_for(config.region)
    region = session.region_name or "us-east-1"

    def client(service: str) -> Any:
        return session.client(
            service, region_name=region, endpoint_url=config.endpoint_url, config=RETRIES
        )

    check_permissions(config, client("sts"), client("iam"), region, uses)
