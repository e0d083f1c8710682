"""The kustomize base and overlays for users without Helm: rendered, validated, fresh."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from deploy_checks import CLUSTER_SCOPED, MANIFESTS, ROOT, kustomize, of_kind, tool, validate_all

from flywheel.pipelines import kubernetes_manifests
from flywheel.pipelines.catalog import PIPELINES

OVERLAYS = {"dev": "flywheel-dev", "prod": "flywheel"}
KFP_NAMESPACE = "kubeflow"


def test_kustomize_bases_are_the_chart_rendered_without_helm() -> None:
    renderer = tool("render_kustomize_base")
    for target, values in renderer.TARGETS.items():
        assert target.read_text() == renderer.render(*values), (
            f"{target.relative_to(ROOT)} is stale: run python tests/tools/render_kustomize_base.py"
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_valid_manifests(overlay: str) -> None:
    validate_all(kustomize(MANIFESTS / "overlays" / overlay))


@pytest.mark.parametrize("overlay,namespace", OVERLAYS.items())
def test_overlay_puts_the_operator_in_its_namespace_and_the_pipelines_where_kfp_reads_them(
    overlay: str, namespace: str
) -> None:
    docs = kustomize(MANIFESTS / "overlays" / overlay)
    (created,) = of_kind(docs, "Namespace")
    assert created["metadata"]["name"] == namespace
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in doc["metadata"], name
        elif doc["apiVersion"].startswith("pipelines.kubeflow.org/") or (
            doc["kind"] in {"Role", "RoleBinding"}
            and doc["metadata"]["name"].endswith("-pipeline-versions")
        ):
            # KFP's objects, and the operator's read-only grant on its PipelineVersions there.
            assert doc["metadata"]["namespace"] == KFP_NAMESPACE, name
        else:
            assert doc["metadata"]["namespace"] == namespace, name
    (deployment,) = of_kind(docs, "Deployment")
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["KFP_NAMESPACE"] == KFP_NAMESPACE
    for binding in of_kind(docs, "ClusterRoleBinding") + of_kind(docs, "RoleBinding"):
        assert binding["subjects"][0]["namespace"] == namespace, binding["metadata"]["name"]


def test_overlay_kfp_namespace_follows_the_operator_setting(tmp_path: Path) -> None:
    """One value: changing the operator's KFP_NAMESPACE moves the pipelines with it."""
    manifests = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, manifests)
    overlay = manifests / "overlays" / "prod"
    operator = overlay / "operator" / "kustomization.yaml"
    operator.write_text(
        operator.read_text()
        + """  - target: {kind: Deployment, name: flywheel-operator}
    patch: |
      - op: replace
        path: /spec/template/spec/containers/0/env/1/value
        value: team-a
"""
    )
    docs = kustomize(overlay)
    (deployment,) = of_kind(docs, "Deployment")
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[1] == {"name": "KFP_NAMESPACE", "value": "team-a"}
    kfp_objects = of_kind(docs, "Pipeline") + of_kind(docs, "PipelineVersion")
    assert kfp_objects and {doc["metadata"]["namespace"] for doc in kfp_objects} == {"team-a"}


def test_dev_overlay_serves_only_its_namespace_and_shares_no_object_with_prod() -> None:
    dev = kustomize(MANIFESTS / "overlays" / "dev")
    prod = kustomize(MANIFESTS / "overlays" / "prod")
    assert not of_kind(dev, "ClusterRole") and not of_kind(dev, "ClusterRoleBinding")
    (deployment,) = of_kind(dev, "Deployment")
    assert (
        "--namespace=flywheel-dev"
        in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    # Both applied to one cluster: 0 objects of one kind, namespace and name, cluster-scoped
    # ones included; prod owns the CRD and the pipelines.
    assert not {_key(doc) for doc in dev} & {_key(doc) for doc in prod}
    assert of_kind(prod, "CustomResourceDefinition") and of_kind(prod, "PipelineVersion")
    (pins,) = of_kind(dev, "ConfigMap")
    assert pins["metadata"]["namespace"] == "flywheel-dev"


def _key(doc: dict) -> tuple[str, str | None, str]:
    return doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]


def test_prod_overlay_ships_the_crd_operator_and_the_current_version_of_every_pipeline() -> None:
    docs = kustomize(MANIFESTS / "overlays" / "prod")
    crds = {doc["metadata"]["name"] for doc in of_kind(docs, "CustomResourceDefinition")}
    assert crds == {"retrainpolicies.flywheel.dev", "modeldeployments.flywheel.dev"}
    assert of_kind(docs, "Deployment") and of_kind(docs, "ClusterRole")
    versions = {doc["metadata"]["name"] for doc in of_kind(docs, "PipelineVersion")}
    for pipeline in PIPELINES.values():
        _, current = kubernetes_manifests.current_documents(pipeline)
        assert current["metadata"]["name"] in versions


def test_prod_overlay_runs_leader_elected_replicas_with_irsa() -> None:
    docs = kustomize(MANIFESTS / "overlays" / "prod")
    (deployment,) = of_kind(docs, "Deployment")
    (account,) = of_kind(docs, "ServiceAccount")
    assert deployment["spec"]["replicas"] == 2
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
        "arn:aws:iam::"
    )
    assert of_kind(docs, "PodDisruptionBudget")
    (lease_role,) = [
        doc for doc in of_kind(docs, "Role") if doc["metadata"]["name"].endswith("-leader-election")
    ]
    assert lease_role["metadata"]["namespace"] == "flywheel"
    assert {rule["resources"][0] for rule in lease_role["rules"]} == {"leases"}


def test_pipelines_folder_is_a_kustomization_that_kubectl_apply_f_skips() -> None:
    folder: Path = MANIFESTS / "pipelines"
    listed = kustomize(folder)
    assert {doc["kind"] for doc in listed} == {"Pipeline", "PipelineVersion", "ConfigMap"}
    # kubectl apply -f <folder> reads only these extensions; the kustomization has none of them.
    assert not kubernetes_manifests.KUSTOMIZATION.endswith((".yaml", ".yml", ".json"))
