"""Permissions are checked before any task runs, with IAM's policy simulator for the caller.

moto does not implement ``SimulatePrincipalPolicy``, so the clients are botocore Stubbers (the
suite's strict validator checks each request against the service model) answering with responses
shaped as IAM returns them.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from flywheel.components.compute.sagemaker.permissions import (
    RunUses,
    check_permissions,
    principal_arn,
    simulation_plan,
)
from flywheel.components.errors import InvalidSpecError

from .conftest import ROLE, base_config

ACCOUNT = "123456789012"
RUNNER_NAME = "flywheel-pipeline-runner"
RUNNER = f"arn:aws:iam::{ACCOUNT}:role/{RUNNER_NAME}"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/flywheel-pipeline-runner/botocore-session-1"
ALARM = f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:qsar-5xx"


def evaluation(action: str, resource: str, decision: str) -> dict:
    """One EvaluationResults entry as IAM returns it."""
    matched = (
        [
            {
                "SourcePolicyId": "flywheel-pipeline-runner",
                "SourcePolicyType": "IAM Policy",
                "StartPosition": {"Line": 1, "Column": 120},
                "EndPosition": {"Line": 1, "Column": 480},
            }
        ]
        if decision == "allowed"
        else []
    )
    return {
        "EvalActionName": action,
        "EvalResourceName": resource,
        "EvalDecision": decision,
        "MatchedStatements": matched,
        "MissingContextValues": [],
    }


@pytest.fixture
def clients(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    session = boto3.session.Session(region_name="us-east-1")
    sts, iam = session.client("sts"), session.client("iam")
    with Stubber(sts) as sts_stub, Stubber(iam) as iam_stub:
        sts_stub.add_response(
            "get_caller_identity",
            {"UserId": "AROAEXAMPLEID:botocore-session-1", "Account": ACCOUNT, "Arn": SESSION},
        )
        iam_stub.add_response("get_role", role_response(RUNNER), {"RoleName": RUNNER_NAME})
        yield sts, iam, iam_stub
        iam_stub.assert_no_pending_responses()


def role_response(arn: str) -> dict:
    """GetRole's answer, as IAM gives it."""
    return {
        "Role": {
            "Path": "/" + "".join(f"{part}/" for part in arn.split(":role/", 1)[1].split("/")[:-1]),
            "RoleName": arn.rsplit("/", 1)[1],
            "RoleId": "AROAEXAMPLEID1234567",
            "Arn": arn,
            "CreateDate": "2026-01-01T00:00:00Z",
        }
    }


def answer(
    iam_stub: Stubber,
    denied: set[tuple[str, str]],
    principal: str = RUNNER,
    uses: RunUses = RunUses(),  # noqa: B008 - frozen
    unsimulable: str = "",
) -> None:
    """IAM's answers to every simulation the check asks for, in its order: ``denied`` are
    implicitDeny, and simulating ``unsimulable`` (a principal's ARN) is AccessDenied."""
    principals = {"caller": principal, "execution_role": ROLE}
    for (who, resource, context), actions in simulation_plan(
        base_config(), "us-east-1", ACCOUNT, uses
    ):
        if principals[who] == unsimulable:
            iam_stub.add_client_error(
                "simulate_principal_policy", service_error_code="AccessDenied", http_status_code=403
            )
            return
        results = [
            evaluation(
                action, resource, "implicitDeny" if (action, resource) in denied else "allowed"
            )
            for action in actions
        ]
        iam_stub.add_response(
            "simulate_principal_policy",
            {"EvaluationResults": results, "IsTruncated": False},
            {
                "PolicySourceArn": principals[who],
                "ActionNames": list(actions),
                "ResourceArns": [resource],
                "ContextEntries": [
                    {"ContextKeyName": key, "ContextKeyValues": [value], "ContextKeyType": "string"}
                    for key, value in context
                ],
            },
        )


def test_an_assumed_role_session_is_simulated_as_its_role_path_included(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    iam = boto3.session.Session(region_name="us-east-1").client("iam")
    under_a_path = f"arn:aws:iam::{ACCOUNT}:role/ml/team-a/{RUNNER_NAME}"
    with Stubber(iam) as stub:
        stub.add_response("get_role", role_response(under_a_path), {"RoleName": RUNNER_NAME})
        assert principal_arn(SESSION, iam) == under_a_path
        user = f"arn:aws:iam::{ACCOUNT}:user/alice"
        assert principal_arn(user, iam) == user  # a user is simulated as itself, no lookup


def test_a_caller_who_may_not_read_its_role_is_warned_and_not_blocked(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    session = boto3.session.Session(region_name="us-east-1")
    sts, iam = session.client("sts"), session.client("iam")
    warnings: list[str] = []
    with Stubber(sts) as sts_stub, Stubber(iam) as iam_stub:
        sts_stub.add_response(
            "get_caller_identity",
            {"UserId": "AROAEXAMPLEID:botocore-session-1", "Account": ACCOUNT, "Arn": SESSION},
        )
        iam_stub.add_client_error(
            "get_role", service_error_code="AccessDenied", http_status_code=403
        )
        check_permissions(base_config(), sts, iam, "us-east-1", warn=warnings.append)
    assert warnings == [
        f"flywheel: warning: permissions: not checked, {SESSION} may not run iam:GetRole "
        "(AccessDenied)"
    ]


def test_a_caller_with_every_permission_passes(clients):
    sts, iam, iam_stub = clients
    answer(iam_stub, denied=set())

    check_permissions(base_config(), sts, iam, "us-east-1", warn=pytest.fail)


def test_denied_actions_are_named_with_principal_and_resource_in_one_line(clients):
    sts, iam, iam_stub = clients
    answer(iam_stub, denied={("iam:PassRole", ROLE)})

    with pytest.raises(InvalidSpecError) as caught:
        check_permissions(base_config(), sts, iam, "us-east-1")

    assert caught.value.field == "permissions"
    assert str(caught.value) == f"permissions: {RUNNER} may not iam:PassRole on {ROLE}"


def test_a_caller_who_may_not_simulate_is_warned_once_and_not_blocked(clients):
    sts, iam, iam_stub = clients
    iam_stub.add_client_error(
        "simulate_principal_policy",
        service_error_code="AccessDenied",
        service_message=f"User: {SESSION} is not authorized to perform: iam:SimulatePrincipalPolicy",
        http_status_code=403,
    )
    warnings: list[str] = []

    check_permissions(base_config(), sts, iam, "us-east-1", warn=warnings.append)

    assert warnings == [
        f"flywheel: warning: permissions: not checked, {RUNNER} may not run "
        "iam:SimulatePrincipalPolicy (AccessDenied)"
    ]


def test_a_run_is_checked_for_listing_its_prefix_and_describing_its_models(clients):
    sts, iam, iam_stub = clients
    bucket = "arn:aws:s3:::flywheel-test"
    model = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model/*"
    answer(iam_stub, denied={("s3:ListBucket", bucket), ("sagemaker:DescribeModel", model)})

    with pytest.raises(InvalidSpecError) as caught:
        check_permissions(base_config(), sts, iam, "us-east-1")

    assert str(caught.value) == (
        f"permissions: {RUNNER} may not sagemaker:DescribeModel on {model}; "
        f"{RUNNER} may not s3:ListBucket on {bucket}"
    )


def test_the_bucket_listing_is_simulated_with_the_prefix_the_policy_conditions_on():
    plan = dict(simulation_plan(base_config(), "us-east-1", ACCOUNT, RunUses()))

    assert plan[("caller", "arn:aws:s3:::flywheel-test", (("s3:prefix", "runs/"),))] == (
        "s3:ListBucket",
    )


def test_a_registry_and_an_endpoint_are_checked_when_the_run_uses_them():
    uses = RunUses(
        registry="sagemaker://eu-west-1/flywheel-registry/models?image=x:1",
        model_name="QSAR",
        endpoint_name="qsar-prod",
    )
    asked = {
        (action, resource)
        for (_, resource, _), actions in simulation_plan(base_config(), "us-east-1", ACCOUNT, uses)
        for action in actions
    }

    assert (
        "sagemaker:CreateModelPackage",
        f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:model-package-group/qsar",
    ) in asked
    assert ("s3:PutObject", "arn:aws:s3:::flywheel-registry/models/*") in asked
    assert (
        "sagemaker:UpdateEndpoint",
        f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/qsar-prod",
    ) in asked
    plain = {
        action
        for _, actions in simulation_plan(base_config(), "us-east-1", ACCOUNT, RunUses())
        for action in actions
    }
    assert not any("ModelPackage" in a or "Endpoint" in a for a in plain)


def test_a_tuning_run_is_checked_for_the_tuning_jobs_calls_and_a_training_run_is_not():
    def asked(uses: RunUses) -> set[tuple[str, str]]:
        return {
            (action, resource)
            for (who, resource, _), actions in simulation_plan(
                base_config(), "us-east-1", ACCOUNT, uses
            )
            for action in actions
            if who == "caller"
        }

    tuning_job = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:hyper-parameter-tuning-job/*"
    tuned = asked(RunUses(tuning=True))
    assert ("sagemaker:CreateHyperParameterTuningJob", tuning_job) in tuned
    assert ("sagemaker:StopHyperParameterTuningJob", tuning_job) in tuned
    assert not any("HyperParameterTuning" in action for action, _ in asked(RunUses()))


def test_rollback_alarms_the_execution_role_may_not_read_are_named_with_that_role(clients):
    sts, iam, iam_stub = clients
    uses = RunUses(endpoint_name="qsar-prod", rollback_alarms=("qsar-5xx",))
    answer(iam_stub, denied={("cloudwatch:DescribeAlarms", ALARM)}, uses=uses)

    with pytest.raises(InvalidSpecError) as caught:
        check_permissions(base_config(), sts, iam, "us-east-1", uses)

    assert str(caught.value) == f"permissions: {ROLE} may not cloudwatch:DescribeAlarms on {ALARM}"


def test_a_runner_that_may_not_simulate_the_execution_role_is_warned_its_own_still_checked(
    clients,
):
    sts, iam, iam_stub = clients
    uses = RunUses(endpoint_name="qsar-prod", rollback_alarms=("qsar-5xx",))
    endpoint = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/qsar-prod"
    answer(iam_stub, denied={("sagemaker:UpdateEndpoint", endpoint)}, uses=uses, unsimulable=ROLE)
    warnings: list[str] = []

    with pytest.raises(InvalidSpecError) as caught:
        check_permissions(base_config(), sts, iam, "us-east-1", uses, warn=warnings.append)

    assert (
        str(caught.value) == f"permissions: {RUNNER} may not sagemaker:UpdateEndpoint on {endpoint}"
    )
    assert warnings == [
        f"flywheel: warning: permissions: not checked for {ROLE}, {RUNNER} may not run "
        "iam:SimulatePrincipalPolicy (AccessDenied)"
    ]


@pytest.mark.parametrize("code", ["InvalidClientTokenId", "ExpiredToken", "SignatureDoesNotMatch"])
def test_credentials_aws_rejects_stop_the_run_in_one_line(monkeypatch, code):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    session = boto3.session.Session(region_name="us-east-1")
    sts, iam = session.client("sts"), session.client("iam")
    with Stubber(sts) as sts_stub:
        sts_stub.add_client_error(
            "get_caller_identity",
            service_error_code=code,
            service_message="The security token included in the request is invalid.",
            http_status_code=403,
        )
        with pytest.raises(InvalidSpecError) as caught:
            check_permissions(base_config(), sts, iam, "us-east-1", warn=pytest.fail)

    assert str(caught.value) == (
        f"AWS credentials: rejected by AWS ({code}): "
        "The security token included in the request is invalid."
    )
