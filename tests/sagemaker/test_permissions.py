"""Permissions are checked before any task runs, with IAM's policy simulator for the caller.

moto does not implement ``SimulatePrincipalPolicy``, so the clients are botocore Stubbers (the
suite's strict validator checks each request against the service model) answering with responses
shaped as IAM returns them.
"""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber

from flywheel.components.compute.sagemaker.permissions import (
    RUNNER_PERMISSIONS,
    check_permissions,
    principal_arn,
)
from flywheel.components.errors import InvalidSpecError

from .conftest import ROLE, base_config

ACCOUNT = "123456789012"
RUNNER_NAME = "flywheel-pipeline-runner"
RUNNER = f"arn:aws:iam::{ACCOUNT}:role/{RUNNER_NAME}"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/flywheel-pipeline-runner/botocore-session-1"
POLICY = Path(__file__).resolve().parents[2] / "manifests" / "iam" / "pipeline-runner-policy.json"


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


def answer(iam_stub: Stubber, denied: set[tuple[str, str]], principal: str = RUNNER) -> None:
    config = base_config()
    for template, actions in RUNNER_PERMISSIONS.items():
        resource = template.format(
            role_arn=config.role_arn,
            region="us-east-1",
            account=ACCOUNT,
            bucket=config.s3_prefix.bucket,
            prefix=config.s3_prefix.key.rstrip("/") + "/",
        )
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
                "PolicySourceArn": principal,
                "ActionNames": list(actions),
                "ResourceArns": [resource],
                "ContextEntries": ANY,
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


def test_the_runner_policy_grants_every_action_the_check_asks_for():
    statements = json.loads(POLICY.read_text())["Statement"]
    account = re.search(r":(\d{12}):", json.dumps(statements))[1]
    role = next(s["Resource"] for s in statements if s["Action"] == "iam:PassRole")
    for template, actions in RUNNER_PERMISSIONS.items():
        resource = template.format(
            role_arn=role,
            region="us-east-1",
            account=account,
            bucket="flywheel-artifacts",
            prefix="flywheel/",
        )
        for action in actions:
            assert any(
                action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
                and any(
                    fnmatchcase(resource, pattern)
                    for pattern in (
                        s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
                    )
                )
                for s in statements
            ), (action, resource)
