"""The IAM documents under manifests/iam stay valid JSON and least-privilege, and grant what the
code calls: every grant in ``grants.OPERATIONS``, to the principal that needs it."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from flywheel.components.compute.sagemaker.grants import OPERATIONS, simulations

from .boto3_calls import calls_in, calls_on_the_sagemaker_path, operations

REPO = Path(__file__).resolve().parents[2]
IAM = REPO / "manifests" / "iam"
BUCKET = "arn:aws:s3:::flywheel-artifacts"
RUNNER_ROLE = "arn:aws:iam::111122223333:role/flywheel-pipeline-runner"
EXECUTION_ROLE = "arn:aws:iam::111122223333:role/flywheel-sagemaker-execution"
# The policies' example values, as a run with the README's settings would touch them.
EXAMPLE_RUN: dict[str, str | tuple[str, ...]] = {
    "role_arn": EXECUTION_ROLE,
    "region": "us-east-1",
    "account": "111122223333",
    "bucket": "flywheel-artifacts",
    "prefix": "flywheel/",
    "registry_region": "us-east-1",
    "registry_bucket": "flywheel-artifacts",
    "registry_prefix": "flywheel/registry/",
    "model": "qsar",
    "endpoint": "qsar-prod",
    "alarm": ("qsar-5xx", "qsar-latency"),
    "namespace": "Flywheel/Quality",
    "caller_role": RUNNER_ROLE,
}
EVERY_SCOPE = ("jobs", "registry", "endpoint", "rollback", "metrics", "check")
POLICY_OF = {
    "caller": "pipeline-runner-policy.json",
    "execution_role": "sagemaker-execution-policy.json",
}


def load(name: str) -> dict:
    return json.loads((IAM / name).read_text())


def statements(name: str) -> list[dict]:
    return load(name)["Statement"]


def test_pass_role_is_limited_to_the_execution_role_and_to_sagemaker():
    passing = [
        s for s in statements("pipeline-runner-policy.json") if s["Action"] == "iam:PassRole"
    ]
    assert len(passing) == 1
    assert passing[0]["Resource"].endswith(":role/flywheel-sagemaker-execution")
    assert passing[0]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }


def test_s3_access_is_scoped_to_the_bucket_and_prefix():
    for name in ("pipeline-runner-policy.json", "sagemaker-execution-policy.json"):
        for statement in statements(name):
            actions = (
                statement["Action"]
                if isinstance(statement["Action"], list)
                else [statement["Action"]]
            )
            if any(action.startswith("s3:") for action in actions):
                resource = statement["Resource"]
                assert resource in (
                    f"{BUCKET}/flywheel/*",
                    BUCKET,
                ), name
                if resource == BUCKET:
                    assert statement["Condition"]["StringLike"]["s3:prefix"]


def test_no_statement_grants_a_whole_service():
    for path in IAM.glob("*-policy.json"):
        for statement in statements(path.name):
            actions = (
                statement["Action"]
                if isinstance(statement["Action"], list)
                else [statement["Action"]]
            )
            assert not any(action == "*" or action.endswith(":*") for action in actions), path.name


def test_runner_trust_is_bound_to_one_service_account_through_irsa():
    (trust,) = statements("trust/pipeline-runner.json")
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    conditions = trust["Condition"]["StringEquals"]
    (subject,) = (value for key, value in conditions.items() if key.endswith(":sub"))
    assert subject == "system:serviceaccount:kubeflow:pipeline-runner"


def actions(statement: dict) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _conditions_hold(condition: Mapping[str, Mapping[str, Any]], context: dict[str, str]) -> bool:
    """The condition operators the shipped policies use, as IAM reads them; a key the request
    does not carry fails its condition, as in IAM."""
    for operator, keys in condition.items():
        for key, expected in keys.items():
            if key not in context:
                return False
            values = [str(value) for value in _listed(expected)]
            if operator == "StringEquals":
                held = context[key] in values
            elif operator == "StringLike":
                held = any(fnmatch.fnmatchcase(context[key], value) for value in values)
            else:
                raise AssertionError(f"this test does not read condition operator {operator}")
            if not held:
                return False
    return True


def allows(
    policy: list[dict], action: str, resource: str, context: tuple[tuple[str, str], ...] = ()
) -> bool:
    """Whether an Allow statement of ``policy`` matches the request (the policies have no Deny)."""
    return any(
        statement["Effect"] == "Allow"
        and any(fnmatch.fnmatchcase(action, pattern) for pattern in actions(statement))
        and any(
            fnmatch.fnmatchcase(resource, pattern) for pattern in _listed(statement["Resource"])
        )
        and _conditions_hold(statement.get("Condition", {}), dict(context))
        for statement in policy
    )


def test_every_grant_the_code_needs_is_in_the_policy_of_the_principal_that_needs_it():
    missing = [
        f"{POLICY_OF[who]}: {action} on {resource} {dict(context) or ''}"
        for (who, resource, context), asked in simulations(EVERY_SCOPE, EXAMPLE_RUN).items()
        for action in asked
        if not allows(statements(POLICY_OF[who]), action, resource, context)
    ]
    assert missing == []


def test_the_execution_role_may_describe_the_auto_rollback_alarms():
    # SageMaker watches the alarms of a blue/green update as the execution role (SageMaker
    # Developer Guide, "Auto-Rollback Configuration and Monitoring").
    alarm = "arn:aws:cloudwatch:us-east-1:111122223333:alarm:qsar-5xx"
    assert allows(statements("sagemaker-execution-policy.json"), "cloudwatch:DescribeAlarms", alarm)
    assert not allows(
        statements("sagemaker-execution-policy.json"),
        "cloudwatch:DescribeAlarms",
        "arn:aws:cloudwatch:eu-west-1:999999999999:alarm:qsar-5xx",
    )
    # The runner may ask the simulator whether the execution role can: the check does, with alarms.
    assert allows(
        statements("pipeline-runner-policy.json"), "iam:SimulatePrincipalPolicy", EXECUTION_ROLE
    )


def test_the_runner_may_find_every_attempt_of_a_job_by_name():
    for kind in ("Training", "Processing", "Transform"):
        assert allows(statements("pipeline-runner-policy.json"), f"sagemaker:List{kind}Jobs", "*")
    assert not allows(statements("pipeline-runner-policy.json"), "sagemaker:ListTags", "*")


def test_pipeline_runner_grants_exactly_the_sagemaker_calls_the_code_makes():
    granted = {
        action
        for statement in statements("pipeline-runner-policy.json")
        for action in actions(statement)
        if action.startswith("sagemaker:")
    }
    needed = {
        grant.action
        for call in calls_on_the_sagemaker_path()
        for grant in OPERATIONS.get(call, ())
        if grant.principal == "caller" and grant.action.startswith("sagemaker:")
    }
    assert granted == needed


def test_image_pulls_are_scoped_to_named_accounts_and_cover_the_example_images():
    (pulls,) = [
        s
        for s in statements("sagemaker-execution-policy.json")
        if "ecr:BatchGetImage" in actions(s)
    ]
    accounts = {resource.split(":")[4] for resource in pulls["Resource"]}
    assert "*" not in accounts
    for image in (
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.3-cpu-py311",
    ):
        account, repository = image.split(".")[0], image.split("/", 1)[1].split(":")[0]
        assert f"arn:aws:ecr:us-east-1:{account}:repository/{repository}" in pulls["Resource"]


def test_kms_statements_name_one_key_and_volume_grants_only_for_aws_resources():
    for name in ("kms-pipeline-runner-policy.json", "kms-execution-policy.json"):
        for statement in statements(name):
            assert statement["Resource"].startswith("arn:aws:kms:us-east-1:111122223333:key/")
    (grant,) = [
        s for s in statements("kms-pipeline-runner-policy.json") if "kms:CreateGrant" in actions(s)
    ]
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_operator_policy_lets_every_sample_data_arrival_trigger_list_its_prefix():
    sample = yaml.safe_load((IAM.parent / "policies" / "retrainpolicy-sample.yaml").read_text())
    watched = [t["dataArrival"] for t in sample["spec"]["triggers"] if "dataArrival" in t]
    assert watched
    listing = [s for s in statements("operator-policy.json") if s["Action"] == "s3:ListBucket"]
    for trigger in watched:
        assert any(
            s["Resource"] == f"arn:aws:s3:::{trigger['bucket']}"
            and any(
                fnmatch.fnmatchcase(trigger["prefix"], pattern)
                for pattern in s["Condition"]["StringLike"]["s3:prefix"]
            )
            for s in listing
        ), trigger


def test_operator_policy_grants_every_aws_call_the_model_deployment_reconciler_makes():
    import botocore.session
    from botocore import xform_name

    operators = REPO / "operators"
    calls = set()
    for module in ("serving_reads.py", "deployment_handlers.py"):
        calls |= calls_in((operators / module).read_text())
    assert {"sagemaker.describe_endpoint", "cloudwatch.describe_alarms"} <= calls
    session = botocore.session.get_session()
    granted = {a for s in statements("operator-policy.json") for a in actions(s)}
    for call in sorted(calls):
        service, method = call.split(".")
        assert method in operations()[service]
        (operation,) = [
            o for o in session.get_service_model(service).operation_names if xform_name(o) == method
        ]
        assert f"{service}:{operation}" in granted, call
