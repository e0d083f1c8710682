"""Approval on SageMaker Model Registry, on moto, with every request checked by the strict
validator: UpdateModelPackage carries the status, who and why; the champion is the newest Approved
package; the audit trail reads back whole."""

from __future__ import annotations

import itertools
import json

import boto3
import pytest

from flywheel.components.compute.sagemaker.approvals import (
    APPROVED_AT,
    APPROVED_BY,
    ApprovalTrails,
    properties_with,
)
from flywheel.components.compute.sagemaker.s3 import S3Uri
from flywheel.components.compute.sagemaker.validation import fits
from flywheel.components.errors import InvalidSpecError, RegistryError
from flywheel.pipelines.cli import main

from .moto_sagemaker import moto_account
from .test_registry_and_deploy_on_moto import BUCKET, IMAGE, registry_at

_groups = itertools.count()


@pytest.fixture(scope="module")
def endpoint_url():
    with pytest.MonkeyPatch.context() as monkeypatch, moto_account(monkeypatch, BUCKET) as url:
        yield url


@pytest.fixture
def model(endpoint_url):
    """Three pending packages in a group of this test's own, as a registration leaves them.

    They are created directly (registering uploads archives and reports, which approvals never
    read): the registry sees a group as SageMaker holds it, whoever made it.
    """
    name = f"approvals-{next(_groups)}"
    sagemaker = boto3.client("sagemaker", endpoint_url=endpoint_url)
    sagemaker.create_model_package_group(ModelPackageGroupName=name)
    for index in range(3):
        sagemaker.create_model_package(
            ModelPackageGroupName=name,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [
                    {"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/{index}/model.tar.gz"}
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            CustomerMetadataProperties={
                "model_sha256": f"{index:064x}",
                "metric.rmse": repr(1.0 - index / 10),
            },
        )
    return registry_at(endpoint_url), name


def _package(endpoint_url: str, name: str, version: int) -> dict:
    sagemaker = boto3.client("sagemaker", endpoint_url=endpoint_url)
    return sagemaker.describe_model_package(
        ModelPackageName=f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{name}/{version}"
    )


def _states(registry, name: str) -> list[tuple[str, str]]:
    return [(v.stage, v.approval) for v in registry.versions(name)]


def test_approval_is_an_update_model_package_showing_who_and_why(model, endpoint_url):
    registry, name = model
    assert _states(registry, name)[0] == ("candidate", "PendingManualApproval")

    approved = registry.set_approval(
        name, 2, "Approved", by="alice@example.com", note="rmse 0.9, ok"
    )

    package = _package(endpoint_url, name, 2)
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ApprovalDescription"] == "Approved by alice@example.com: rmse 0.9, ok"
    properties = package["CustomerMetadataProperties"]
    assert properties[APPROVED_BY] == "alice@example.com"
    assert properties[APPROVED_AT] == approved.approvals[-1]["at"]
    assert properties["metric.rmse"] == "0.9"  # the update kept the registration's properties
    assert [(a["status"], a["by"], a["note"]) for a in approved.approvals] == [
        ("Approved", "alice@example.com", "rmse 0.9, ok")
    ]
    assert registry.champion(name).version == 2


def test_the_champion_is_the_newest_approved_and_a_replaced_champion_stays_approved(model):
    registry, name = model
    registry.promote(name, 1, "first champion", by="gate")
    registry.promote(name, 3, "beat version 1", by="gate")

    assert registry.champion(name).version == 3
    assert _states(registry, name) == [
        ("archived", "Approved"),
        ("candidate", "PendingManualApproval"),
        ("champion", "Approved"),
    ]
    registry.set_approval(name, 3, "Rejected", by="bob", note="drift")
    assert registry.champion(name).version == 1


def test_a_rollback_rejects_the_newer_approved_packages_saying_why(model, endpoint_url):
    registry, name = model
    for version in (1, 2, 3):
        registry.promote(name, version, f"round {version}", by="gate")

    registry.promote(name, 1, "2 and 3 misbehave", by="carol")

    assert registry.champion(name).version == 1
    assert [approval for _, approval in _states(registry, name)] == [
        "Approved",
        "Rejected",
        "Rejected",
    ]
    package = _package(endpoint_url, name, 3)
    assert package["ApprovalDescription"] == (
        "Rejected by carol: rolled back to version 1: 2 and 3 misbehave"
    )
    trail = registry.get(name, 3).approvals
    assert [(a["status"], a["by"]) for a in trail] == [("Approved", "gate"), ("Rejected", "carol")]


def test_approving_a_rejected_package_needs_force_and_bad_requests_change_nothing(
    model, endpoint_url
):
    registry, name = model
    registry.set_approval(name, 1, "Rejected", by="dave", note="leaks labels")
    before = _package(endpoint_url, name, 1)

    with pytest.raises(RegistryError, match=r"was Rejected by dave \(leaks labels\)"):
        registry.set_approval(name, 1, "Approved", by="erin")
    with pytest.raises(RegistryError, match=r"has no version 9; versions: \[1, 2, 3\]"):
        registry.set_approval(name, 9, "Approved", by="erin")
    with pytest.raises(InvalidSpecError, match="status: 'approved' is not an approval status"):
        registry.set_approval(name, 1, "approved", by="erin")
    assert _package(endpoint_url, name, 1)["LastModifiedTime"] == before["LastModifiedTime"]

    forced = registry.promote(name, 1, "fixed upstream", by="erin", force=True)
    assert (forced.stage, forced.approval) == ("champion", "Approved")
    assert [a["status"] for a in forced.approvals] == ["Rejected", "Approved"]


def test_a_trail_entry_whose_update_never_happened_is_not_in_force(model, endpoint_url):
    registry, name = model
    registry.set_approval(name, 2, "Approved", by="frank")
    key = f"models/approvals/{name}/2.json"
    s3 = boto3.client("s3", endpoint_url=endpoint_url)
    document = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    # A caller that died between its trail write and its UpdateModelPackage.
    dead = {"status": "Rejected", "by": "ghost", "at": "2999-01-01T00:00:00+00:00", "note": ""}
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps([*document, dead]).encode())

    version = registry.get(name, 2)
    assert (version.approval, [a["by"] for a in version.approvals]) == ("Approved", ["frank"])
    again = registry.set_approval(name, 2, "Rejected", by="gina")
    assert [a["by"] for a in again.approvals] == ["frank", "gina"]


def test_decisions_made_outside_flywheel_read_from_the_package(model, endpoint_url):
    registry, name = model
    sagemaker = boto3.client("sagemaker", endpoint_url=endpoint_url)
    arn = _package(endpoint_url, name, 1)["ModelPackageArn"]
    # As the earlier registry, or the console, left a replaced champion.
    sagemaker.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus="Rejected",
        ApprovalDescription="replaced by version 2",
    )
    version = registry.get(name, 1)
    assert version.approval == "Rejected"
    assert [(a["status"], a["note"]) for a in version.approvals] == [
        ("Rejected", "replaced by version 2")
    ]


def test_flywheel_approve_and_show_on_sagemaker_name_the_aws_caller(model, endpoint_url, capsys):
    registry, name = model
    caller = boto3.client("sts", endpoint_url=endpoint_url).get_caller_identity()["Arn"]

    assert main(["approve", name, "2", "--registry", registry.uri, "--note", "signed off"]) == 0
    assert registry.champion(name).approvals[-1]["by"] == caller
    capsys.readouterr()
    assert main(["registry", "show", name, "2", "--registry", registry.uri]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0].startswith(f"{name} version 2: champion, Approved; rmse=0.9000")
    assert shown[1].endswith(f" Approved by {caller}: signed off")


def test_two_decisions_at_once_cannot_lose_a_trail_entry(model, endpoint_url):
    registry, name = model
    registry.set_approval(name, 1, "Approved", by="hana")
    trails = ApprovalTrails(
        boto3.client("s3", endpoint_url=endpoint_url), S3Uri(BUCKET, "models/approvals")
    )
    entries, etag = trails.read(name, 1)
    registry.set_approval(name, 1, "Rejected", by="ivan")  # the other person, in between

    with pytest.raises(RegistryError, match="another approval was recorded at the same moment"):
        trails.write(name, 1, [*entries, {"status": "Approved", "by": "me"}], etag)
    assert [a["by"] for a in registry.get(name, 1).approvals] == ["hana", "ivan"]


def test_who_and_when_fit_sagemakers_property_limits_even_on_a_full_package():
    full = {f"metric.m{i:02d}": "1.0" for i in range(48)} | {"model_sha256": "ab", "x": "y"}
    entry = {
        "status": "Approved",
        "by": "Jane Doe (ops), on call",
        "at": "2026-12-06T10:00:00.5+00:00",
        "note": "",
    }

    merged = properties_with(full, entry, room=50)

    assert len(merged) == 50 and merged[APPROVED_BY] == "Jane Doe _ops__ on call"
    assert "metric.m47" not in merged and "metric.m46" not in merged and "model_sha256" in merged
    assert fits("sagemaker", "CustomerMetadataMap", merged)
