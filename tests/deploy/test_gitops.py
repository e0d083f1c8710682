"""The GitOps walkthrough as written: IRSA trust for every operator account any shipped path
creates, and a sample policy that names a pipeline the shipped manifests create."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_checks import COMBINATIONS, MANIFESTS, helm_template, kustomize, of_kind
from test_namespaces import ARGOCD_SOURCES, _render_argocd

TRUST = MANIFESTS / "iam" / "trust"
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"


def trusted_subjects() -> dict[str, set[str]]:
    """IAM role name (``flywheel-<file stem>``) to the service accounts its trust policy admits."""
    found: dict[str, set[str]] = {}
    for path in sorted(TRUST.glob("operator*.json")):
        subjects: set[str] = set()
        for statement in json.loads(path.read_text())["Statement"]:
            if statement["Action"] != "sts:AssumeRoleWithWebIdentity":
                continue
            for key, value in statement["Condition"]["StringEquals"].items():
                if key.endswith(":sub"):
                    subjects |= {value} if isinstance(value, str) else set(value)
        found[f"flywheel-{path.stem}"] = subjects
    return found


def _operator_account(docs: list[dict[str, Any]]) -> tuple[str, dict[str, Any] | None]:
    """``system:serviceaccount:<ns>:<name>`` of the operator, and its ServiceAccount object."""
    (deployment,) = of_kind(docs, "Deployment")
    name = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    namespace = deployment["metadata"]["namespace"]
    accounts = [
        doc
        for doc in of_kind(docs, "ServiceAccount")
        if doc["metadata"]["name"] == name and doc["metadata"]["namespace"] == namespace
    ]
    return f"system:serviceaccount:{namespace}:{name}", accounts[0] if accounts else None


OVERLAYS = ("dev", "prod")
# Every shipped path, named here and rendered only when a test asks: rendering at import would
# cost every pytest worker the renderings at collection, whichever worker runs these tests.
PATHS = [
    "helm-default",
    *(f"argocd-{name}" for name in ARGOCD_SOURCES),
    *(f"overlay-{overlay}" for overlay in OVERLAYS),
]


@functools.cache
def rendered(path: str) -> list[dict[str, Any]]:
    """The objects one shipped path creates."""
    kind, _, name = path.partition("-")
    if kind == "helm":
        return helm_template()
    if kind == "argocd":
        return _render_argocd(ARGOCD_SOURCES[name])
    return kustomize(MANIFESTS / "overlays" / name)


@pytest.mark.parametrize("name", PATHS)
def test_every_operator_account_a_shipped_path_creates_is_in_an_irsa_trust_policy(
    name: str,
) -> None:
    subject, account = _operator_account(rendered(name))
    trusted = trusted_subjects()
    assert any(subject in subjects for subjects in trusted.values()), subject
    arn = ((account or {}).get("metadata", {}).get("annotations") or {}).get(ROLE_ANNOTATION)
    if arn:
        # The role the account is annotated with is the one whose trust names it.
        role = arn.rsplit("/", 1)[1]
        assert role in trusted, f"{arn}: no manifests/iam/trust file for role {role}"
        assert subject in trusted[role], f"{role} does not trust {subject}"


def test_the_applicationset_environments_with_irsa_have_their_own_roles() -> None:
    roles = {}
    for name, spec in ARGOCD_SOURCES.items():
        _, account = _operator_account(_render_argocd(spec))
        roles[name] = ((account or {})["metadata"].get("annotations") or {}).get(ROLE_ANNOTATION)
    assert roles["applicationset-staging"] != roles["applicationset-prod"]
    assert roles["applicationset-prod"] and roles["applicationset-staging"]


def test_helm_values_files_for_argocd_are_the_combinations_tested() -> None:
    assert {key for key in COMBINATIONS if key.startswith("argocd-")} == {
        f"argocd-{path.stem}" for path in (MANIFESTS / "argocd" / "values").glob("*.yaml")
    }


def _shipped_pipelines() -> set[str]:
    names = set()
    for path in (MANIFESTS / "pipelines").glob("*.yaml"):
        names |= {
            doc["metadata"]["name"]
            for doc in yaml.safe_load_all(path.read_text())
            if doc and doc["kind"] == "Pipeline"
        }
    return names


def test_the_sample_policy_names_a_pipeline_the_shipped_manifests_create() -> None:
    sample = yaml.safe_load((MANIFESTS / "policies" / "retrainpolicy-sample.yaml").read_text())
    pipeline = sample["spec"]["pipeline"]["name"]
    assert pipeline in _shipped_pipelines()
    chart = {doc["metadata"]["name"] for doc in of_kind(helm_template(), "Pipeline")}
    assert pipeline in chart


def test_the_sample_policy_passes_only_parameters_its_pipeline_takes() -> None:
    """KFP refuses a run with a parameter the pipeline does not declare."""
    sample = yaml.safe_load((MANIFESTS / "policies" / "retrainpolicy-sample.yaml").read_text())
    pipeline = sample["spec"]["pipeline"]
    path: Path = MANIFESTS / "pipelines" / f"{pipeline['name']}.yaml"
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    version = next(doc for doc in docs if doc["kind"] == "PipelineVersion")
    inputs = version["spec"]["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]
    assert set(pipeline.get("parameters", {})) <= set(inputs)
