"""The IAM documents under manifests/iam stay valid JSON and least-privilege."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import yaml

IAM = Path(__file__).resolve().parents[2] / "manifests" / "iam"
BUCKET = "arn:aws:s3:::flywheel-artifacts"


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
