"""The kustomize base and overlays for users without Helm: rendered, validated, fresh."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from deploy_checks import MANIFESTS, ROOT, kustomize, of_kind, validate_all

from flywheel.pipelines import kubernetes_manifests
from flywheel.pipelines.catalog import PIPELINES

OVERLAYS = {"dev": "flywheel-dev", "prod": "flywheel"}
CLUSTER_SCOPED = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Namespace"}


def _base_renderer():
    path = ROOT / "tests" / "tools" / "render_kustomize_base.py"
    spec = importlib.util.spec_from_file_location("render_kustomize_base", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kustomize_base_is_the_chart_rendered_without_helm() -> None:
    renderer = _base_renderer()
    assert renderer.TARGET.read_text() == renderer.render(), (
        "manifests/base/flywheel.yaml is stale: run python tests/tools/render_kustomize_base.py"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_valid_manifests(overlay: str) -> None:
    validate_all(kustomize(MANIFESTS / "overlays" / overlay))


@pytest.mark.parametrize("overlay,namespace", OVERLAYS.items())
def test_overlay_puts_every_namespaced_object_in_its_namespace(
    overlay: str, namespace: str
) -> None:
    docs = kustomize(MANIFESTS / "overlays" / overlay)
    (created,) = of_kind(docs, "Namespace")
    assert created["metadata"]["name"] == namespace
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED | {"ClusterKopfPeering"}:
            assert doc["metadata"]["namespace"] == namespace, doc["metadata"]["name"]
    (binding,) = of_kind(docs, "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == namespace


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_ships_crds_operator_and_the_current_version_of_every_pipeline(
    overlay: str,
) -> None:
    docs = kustomize(MANIFESTS / "overlays" / overlay)
    crds = {doc["metadata"]["name"] for doc in of_kind(docs, "CustomResourceDefinition")}
    assert "retrainpolicies.flywheel.dev" in crds
    assert of_kind(docs, "Deployment") and of_kind(docs, "ClusterRole")
    versions = {doc["metadata"]["name"] for doc in of_kind(docs, "PipelineVersion")}
    for pipeline in PIPELINES.values():
        _, current = kubernetes_manifests.current_documents(pipeline)
        assert current["metadata"]["name"] in versions


def test_prod_overlay_runs_peered_replicas_with_irsa() -> None:
    docs = kustomize(MANIFESTS / "overlays" / "prod")
    (deployment,) = of_kind(docs, "Deployment")
    (account,) = of_kind(docs, "ServiceAccount")
    assert deployment["spec"]["replicas"] == 2
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
        "arn:aws:iam::"
    )
    assert of_kind(docs, "ClusterKopfPeering") and of_kind(docs, "PodDisruptionBudget")


def test_pipelines_folder_is_a_kustomization_that_kubectl_apply_f_skips() -> None:
    folder: Path = MANIFESTS / "pipelines"
    listed = kustomize(folder)
    assert {doc["kind"] for doc in listed} == {"Pipeline", "PipelineVersion"}
    # kubectl apply -f <folder> reads only these extensions; the kustomization has none of them.
    assert not kubernetes_manifests.KUSTOMIZATION.endswith((".yaml", ".yml", ".json"))
