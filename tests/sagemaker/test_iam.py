"""The IAM documents under manifests/iam stay valid JSON and least-privilege."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import yaml
from botocore import xform_name

from flywheel.components.compute.sagemaker.jobs import TRAINING, TRANSFORM
from flywheel.components.compute.sagemaker.permissions import RUNNER_PERMISSIONS
from flywheel.components.compute.sagemaker.validation import service_model

REPO = Path(__file__).resolve().parents[2]
IAM = REPO / "manifests" / "iam"
COMPONENTS = REPO / "components"
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


def actions(statement: dict) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def sagemaker_calls_in_the_code() -> set[str]:
    """Every SageMaker API the launchers call, as IAM action names."""
    model = service_model("sagemaker")
    by_method = {xform_name(name): name for name in model.operation_names}
    code = "\n".join(p.read_text() for p in COMPONENTS.rglob("*.py"))
    called = {by_method[m] for m in re.findall(r"sagemaker\.([a-z_]+)\(", code)}
    for job in (TRAINING, TRANSFORM):
        called |= {f"{verb}{job.noun}Job" for verb in ("Create", "Describe", "Stop")}
    # A Create call that carries Tags needs AddTags too.
    return {f"sagemaker:{name}" for name in called} | {"sagemaker:AddTags"}


def test_pipeline_runner_grants_exactly_the_sagemaker_calls_the_code_makes():
    granted = {
        action
        for statement in statements("pipeline-runner-policy.json")
        for action in actions(statement)
        if action.startswith("sagemaker:")
    }
    assert granted == sagemaker_calls_in_the_code()


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


def test_the_permissions_check_asks_only_for_sagemaker_calls_the_code_makes():
    asked = {
        action
        for actions in RUNNER_PERMISSIONS.values()
        for action in actions
        if action.startswith("sagemaker:")
    }
    assert asked <= sagemaker_calls_in_the_code()
