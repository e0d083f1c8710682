"""What IAM must allow for each AWS call on the SageMaker path: one table, keyed by boto3 method.

The permissions check (``permissions.py``) simulates these grants before a run, and the shipped
policies under ``manifests/iam`` grant them. ``tests/sagemaker/test_grants.py`` scans the source
for boto3 calls and holds the two together, so a call added without its grant fails that test
instead of a run, minutes in.

A grant names who needs it: the caller (the pipeline runner), or the execution role, which
SageMaker itself uses for some calls it makes on the run's behalf.
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from botocore import xform_name

from flywheel.components.compute.sagemaker.jobs import (
    PROCESSING,
    TRAINING,
    TRANSFORM,
    TUNING,
    JobType,
)

# What a run does, so that the check asks only for what this run will call:
# jobs: training, processing and transform jobs, their models, logs and S3 staging (always);
# registry: a sagemaker:// model registry; endpoint: deploy_endpoint; rollback: its alarms;
# metrics: the evaluation's CloudWatch metrics; tuning: a SageMaker hyperparameter tuning job;
# check: the permissions check's own calls.
Scope = Literal["jobs", "registry", "endpoint", "rollback", "metrics", "tuning", "check"]
Principal = Literal["caller", "execution_role"]


@dataclass(frozen=True)
class Grant:
    """One IAM action on one resource (an ARN template), needed when a run does one of ``scopes``.

    ``context`` holds the condition keys the shipped policies test (``iam:PassedToService``,
    ``s3:prefix``...), as templates: the simulator treats a missing key as a failed condition.
    """

    action: str
    resource: str
    scopes: frozenset[Scope]
    principal: Principal = "caller"
    context: tuple[tuple[str, str], ...] = ()


def _scopes(*names: Scope) -> frozenset[Scope]:
    return frozenset(names)


JOBS = _scopes("jobs")
REGISTRY = _scopes("registry")
ENDPOINT = _scopes("endpoint")
MODELS = _scopes("jobs", "endpoint")  # transform makes a model; so does a deploy
TUNES = _scopes("tuning")

_SAGEMAKER = "arn:aws:sagemaker:{region}:{account}"
_REGISTRY = "arn:aws:sagemaker:{registry_region}:{account}"
_MODEL = f"{_SAGEMAKER}:model/*"
_ENDPOINT = f"{_SAGEMAKER}:endpoint/{{endpoint}}"
_ENDPOINT_CONFIG = f"{_SAGEMAKER}:endpoint-config/*"
_GROUP = f"{_REGISTRY}:model-package-group/{{model}}"
_PACKAGE = f"{_REGISTRY}:model-package/{{model}}/*"
_LOG_GROUP = "arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/*"
# For actions IAM cannot scope to a resource (the List actions, PutMetricData): "*" or nothing.
_UNSCOPED = "*"


def _pass_role(scopes: frozenset[Scope]) -> Grant:
    """A Create call that names the execution role passes it; the policy allows that only to SageMaker."""
    return Grant(
        "iam:PassRole",
        "{role_arn}",
        scopes,
        context=(("iam:PassedToService", "sagemaker.amazonaws.com"),),
    )


def _s3(action: str) -> tuple[Grant, ...]:
    """``action`` on objects under the run's prefix, and under the registry's."""
    return (
        Grant(action, "arn:aws:s3:::{bucket}/{prefix}*", JOBS),
        Grant(action, "arn:aws:s3:::{registry_bucket}/{registry_prefix}*", REGISTRY),
    )


def _job_arn(kind: JobType) -> str:
    return f"{_SAGEMAKER}:{xform_name(kind.noun).replace('_', '-')}-job/*"


def _job_calls(kind: JobType, scopes: frozenset[Scope] = JOBS) -> dict[str, tuple[Grant, ...]]:
    """A job kind's calls: Create (passing the role, with tags), Describe, Stop, List by name."""
    snake = xform_name(kind.noun)
    arn = _job_arn(kind)
    return {
        f"sagemaker.create_{snake}_job": (
            Grant(f"sagemaker:Create{kind.noun}Job", arn, scopes),
            Grant("sagemaker:AddTags", arn, scopes),
            _pass_role(scopes),
        ),
        f"sagemaker.describe_{snake}_job": (
            Grant(f"sagemaker:Describe{kind.noun}Job", arn, scopes),
        ),
        f"sagemaker.stop_{snake}_job": (Grant(f"sagemaker:Stop{kind.noun}Job", arn, scopes),),
        # Every attempt of a job is found by its name prefix (NameContains).
        f"sagemaker.list_{snake}_jobs": (
            Grant(f"sagemaker:List{kind.noun}Jobs", _UNSCOPED, scopes),
        ),
    }


# Every boto3 call on the SageMaker path ("<service>.<method>") and what IAM must allow for it.
OPERATIONS: dict[str, tuple[Grant, ...]] = {
    **_job_calls(TRAINING),
    **_job_calls(PROCESSING),
    **_job_calls(TRANSFORM),
    # A tuning run's own calls; SageMaker creates the trials' training jobs itself, and the best
    # one is described with the training grants above.
    **_job_calls(TUNING, TUNES),
    "sagemaker.list_training_jobs_for_hyper_parameter_tuning_job": (
        Grant("sagemaker:ListTrainingJobsForHyperParameterTuningJob", _job_arn(TUNING), TUNES),
    ),
    "sagemaker.create_model": (
        Grant("sagemaker:CreateModel", _MODEL, MODELS),
        Grant("sagemaker:AddTags", _MODEL, MODELS),
        _pass_role(MODELS),
    ),
    "sagemaker.describe_model": (Grant("sagemaker:DescribeModel", _MODEL, MODELS),),
    "sagemaker.delete_model": (Grant("sagemaker:DeleteModel", _MODEL, JOBS),),
    "sagemaker.describe_endpoint_config": (
        Grant("sagemaker:DescribeEndpointConfig", _ENDPOINT_CONFIG, ENDPOINT),
    ),
    "sagemaker.create_endpoint_config": (
        Grant("sagemaker:CreateEndpointConfig", _ENDPOINT_CONFIG, ENDPOINT),
    ),
    # IAM authorizes CreateEndpoint and UpdateEndpoint on the endpoint and on its config.
    "sagemaker.create_endpoint": (
        Grant("sagemaker:CreateEndpoint", _ENDPOINT, ENDPOINT),
        Grant("sagemaker:CreateEndpoint", _ENDPOINT_CONFIG, ENDPOINT),
    ),
    "sagemaker.describe_endpoint": (Grant("sagemaker:DescribeEndpoint", _ENDPOINT, ENDPOINT),),
    "sagemaker.update_endpoint": (
        Grant("sagemaker:UpdateEndpoint", _ENDPOINT, ENDPOINT),
        Grant("sagemaker:UpdateEndpoint", _ENDPOINT_CONFIG, ENDPOINT),
        # With auto-rollback, SageMaker watches the alarms as the execution role: "Ensure that
        # your IAM execution role has permission to perform the cloudwatch:DescribeAlarms action
        # on the auto-rollback alarms you specify" (SageMaker Developer Guide, Auto-Rollback
        # Configuration and Monitoring, deployment-guardrails-configuration.html).
        Grant(
            "cloudwatch:DescribeAlarms",
            "arn:aws:cloudwatch:{region}:{account}:alarm:{alarm}",
            _scopes("rollback"),
            principal="execution_role",
        ),
    ),
    "sagemaker.list_model_packages": (Grant("sagemaker:ListModelPackages", _UNSCOPED, REGISTRY),),
    "sagemaker.describe_model_package_group": (
        Grant("sagemaker:DescribeModelPackageGroup", _GROUP, REGISTRY),
    ),
    "sagemaker.create_model_package_group": (
        Grant("sagemaker:CreateModelPackageGroup", _GROUP, REGISTRY),
    ),
    # IAM may authorize CreateModelPackage on the group or on the new package: ask for both.
    "sagemaker.create_model_package": (
        Grant("sagemaker:CreateModelPackage", _GROUP, REGISTRY),
        Grant("sagemaker:CreateModelPackage", _PACKAGE, REGISTRY),
    ),
    "sagemaker.describe_model_package": (
        Grant("sagemaker:DescribeModelPackage", _PACKAGE, REGISTRY),
    ),
    "sagemaker.update_model_package": (Grant("sagemaker:UpdateModelPackage", _PACKAGE, REGISTRY),),
    # A registration that lost a race deletes the duplicate package it made.
    "sagemaker.delete_model_package": (Grant("sagemaker:DeleteModelPackage", _PACKAGE, REGISTRY),),
    # ListObjectsV2 is s3:ListBucket on the bucket; the policies allow it under the prefix only.
    "s3.list_objects_v2": (
        Grant("s3:ListBucket", "arn:aws:s3:::{bucket}", JOBS, context=(("s3:prefix", "{prefix}"),)),
        Grant(
            "s3:ListBucket",
            "arn:aws:s3:::{registry_bucket}",
            REGISTRY,
            context=(("s3:prefix", "{registry_prefix}"),),
        ),
    ),
    "s3.get_object": _s3("s3:GetObject"),
    # The registry's claims: conditional writes (If-None-Match, If-Match) are plain PutObject.
    "s3.put_object": (
        Grant("s3:PutObject", "arn:aws:s3:::{registry_bucket}/{registry_prefix}*", REGISTRY),
    ),
    # The transfer manager: HeadObject and ranged GetObjects down, a multipart upload up (which
    # it aborts if a part fails).
    "s3.download_file": _s3("s3:GetObject"),
    "s3.upload_file": (*_s3("s3:PutObject"), *_s3("s3:AbortMultipartUpload")),
    "logs.describe_log_streams": (Grant("logs:DescribeLogStreams", _LOG_GROUP, JOBS),),
    "logs.get_log_events": (Grant("logs:GetLogEvents", f"{_LOG_GROUP}:log-stream:*", JOBS),),
    "cloudwatch.put_metric_data": (
        Grant(
            "cloudwatch:PutMetricData",
            _UNSCOPED,
            _scopes("metrics"),
            context=(("cloudwatch:namespace", "{namespace}"),),
        ),
    ),
    # The check's own calls, never simulated: GetCallerIdentity needs no grant, and a caller who
    # may not look up its role or simulate is warned, not refused.
    "sts.get_caller_identity": (),
    "iam.get_role": (Grant("iam:GetRole", "{caller_role}", _scopes("check")),),
    "iam.simulate_principal_policy": (
        Grant("iam:SimulatePrincipalPolicy", "{caller_role}", _scopes("check")),
        Grant("iam:SimulatePrincipalPolicy", "{role_arn}", _scopes("check")),
    ),
}

# A simulation: who, on which resource, with which condition keys; the actions asked for.
Simulation = tuple[Principal, str, tuple[tuple[str, str], ...]]


def grants(scopes: Iterable[Scope]) -> list[Grant]:
    """Every grant a run doing ``scopes`` needs, once each, in the table's order."""
    wanted = set(scopes)
    unique = dict.fromkeys(
        grant for calls in OPERATIONS.values() for grant in calls if grant.scopes & wanted
    )
    return list(unique)


def simulations(
    scopes: Iterable[Scope], fields: Mapping[str, str | tuple[str, ...]]
) -> dict[Simulation, tuple[str, ...]]:
    """The grants for ``scopes`` filled in from ``fields``, one entry per resource to simulate.

    A field given as a tuple (the rollback alarms) makes one resource per value.
    """
    asked: dict[Simulation, dict[str, None]] = {}
    for grant in grants(scopes):
        context = tuple((key, value.format(**fields)) for key, value in grant.context)
        for resource in _expand(grant.resource, fields):
            asked.setdefault((grant.principal, resource, context), {})[grant.action] = None
    return {key: tuple(actions) for key, actions in asked.items()}


def _expand(template: str, fields: Mapping[str, str | tuple[str, ...]]) -> list[str]:
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    choices = [
        fields[name] if isinstance(fields[name], tuple) else (fields[name],) for name in names
    ]
    return [
        template.format(**dict(zip(names, values, strict=True)))
        for values in itertools.product(*choices)
    ]
