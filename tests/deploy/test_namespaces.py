"""Where every object lands, on every documented path: Helm values, Argo CD apps, kustomize.

Standalone KFP reads Pipeline resources only from its own namespace (its API server's cache and
its Kubernetes pipeline store are restricted to the pod namespace), so the one KFP namespace value
must reach both the pipelines and the operator. Cluster-scoped objects carry no namespace, and
every name fits the 63 characters of a DNS label and a label value, for any release name.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from deploy_checks import (
    CHART,
    CLUSTER_SCOPED,
    COMBINATIONS,
    MANIFESTS,
    NAMESPACE,
    ROOT,
    helm_template,
    kustomize,
    of_kind,
    pod_specs,
)

ARGOCD = MANIFESTS / "argocd"
KFP_NAMESPACE = "kubeflow"
# Helm's own limit on a release name.
LONGEST_RELEASE = "r" * 53


def _argocd_sources() -> dict[str, dict[str, Any]]:
    """Each Argo CD application as it would be generated: release, namespace, values files."""
    single = yaml.safe_load((ARGOCD / "application.yaml").read_text())
    appset = yaml.safe_load((ARGOCD / "applicationset.yaml").read_text())
    apps = {"application": single["spec"]}
    template = json.dumps(appset["spec"]["template"]["spec"])
    for element in appset["spec"]["generators"][0]["list"]["elements"]:
        text = re.sub(r"\{\{ \.(\w+) \}\}", lambda m, e=element: e[m[1]], template)
        apps[f"applicationset-{element['env']}"] = json.loads(text)
    return apps


ARGOCD_SOURCES = _argocd_sources()


def _render_argocd(spec: dict[str, Any]) -> list[dict[str, Any]]:
    helm = spec["source"]["helm"]
    values = [arg for path in helm["valueFiles"] for arg in ("-f", str(CHART / path))]
    return helm_template(
        *values, release=helm["releaseName"], namespace=spec["destination"]["namespace"]
    )


def _operator_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    (deployment,) = of_kind(docs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {env["name"]: env.get("value") for env in container["env"]}


def _watched(docs: list[dict[str, Any]]) -> set[str]:
    (deployment,) = of_kind(docs, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return {arg.split("=", 1)[1] for arg in args if arg.startswith("--namespace=")}


def _belongs_to_kfp(doc: dict[str, Any]) -> bool:
    """KFP's resources, the operator's read-only grant on its PipelineVersions, and multi-user
    KFP's grants to our accounts in the profile namespace."""
    if doc["apiVersion"].startswith("pipelines.kubeflow.org/"):
        return True
    return doc["kind"] in {"Role", "RoleBinding"} and doc["metadata"]["name"].endswith(
        ("-kfp-operator", "-kfp-client", "-pipeline-versions")
    )


def _leader_election(doc: dict[str, Any]) -> bool:
    return doc["kind"] in {"Role", "RoleBinding"} and doc["metadata"]["name"].endswith(
        "-leader-election"
    )


def assert_placed(docs: list[dict[str, Any]], release_namespace: str) -> None:
    """Cluster-scoped: no namespace. KFP's objects and the multi-user binding: the KFP namespace
    the operator is given. Policy Roles: the watched namespaces. The rest (the leader-election
    Role among them): the release's."""
    kfp_namespace = _operator_env(docs)["KFP_NAMESPACE"]
    watched = _watched(docs)
    for doc in docs:
        kind, meta = doc["kind"], doc["metadata"]
        where = f"{kind}/{meta['name']}"
        assert len(meta["name"]) <= 63, where
        if kind in CLUSTER_SCOPED:
            assert "namespace" not in meta, where
        elif _belongs_to_kfp(doc):
            assert meta["namespace"] == kfp_namespace, where
        elif kind in {"Role", "RoleBinding"} and not _leader_election(doc):
            assert meta["namespace"] in watched, where
        else:
            assert meta["namespace"] == release_namespace, where
    policy_roles = [
        doc
        for doc in of_kind(docs, "Role")
        if not _leader_election(doc) and not _belongs_to_kfp(doc)
    ]
    assert bool(watched) == bool(policy_roles) != bool(of_kind(docs, "ClusterRole"))


@pytest.mark.parametrize("args", COMBINATIONS.values(), ids=COMBINATIONS.keys())
def test_every_helm_values_path_places_objects_where_kfp_and_kubernetes_expect(
    args: list[str],
) -> None:
    assert_placed(helm_template(*args), NAMESPACE)


def test_chart_puts_pipelines_and_the_operator_in_kfp_namespace_by_default() -> None:
    docs = helm_template()
    assert _operator_env(docs)["KFP_NAMESPACE"] == KFP_NAMESPACE
    pipelines = of_kind(docs, "Pipeline") + of_kind(docs, "PipelineVersion")
    assert pipelines and {doc["metadata"]["namespace"] for doc in pipelines} == {KFP_NAMESPACE}


def test_one_kfp_namespace_value_moves_pipelines_operator_and_multi_user_binding() -> None:
    namespace = "kubeflow-user-example-com"
    docs = helm_template("--set", f"kfp.namespace={namespace}", "--set", "kfp.multiUser=true")
    env = _operator_env(docs)
    assert env["KFP_NAMESPACE"] == env["KFP_PIPELINES_NAMESPACE"] == namespace
    assert "KFP_PIPELINES_NAMESPACE" not in _operator_env(helm_template())
    registering = [
        spec["containers"][0]
        for _, spec in pod_specs(docs)
        if spec["containers"][0]["command"][:3] == ["python", "-m", "flywheel.pipelines.register"]
    ]
    assert registering
    for container in registering:
        assert f"--namespace={namespace}" in container["args"]
    assert {doc["metadata"]["namespace"] for doc in of_kind(docs, "PipelineVersion")} == {namespace}
    bindings = [doc for doc in of_kind(docs, "RoleBinding") if _belongs_to_kfp(doc)]
    assert {doc["metadata"]["namespace"] for doc in bindings} == {namespace}
    for binding in bindings:
        # Roles of the chart's own, never Kubeflow's kubeflow-edit.
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == binding["metadata"]["name"]
    accounts = {doc["metadata"]["name"] for doc in of_kind(docs, "ServiceAccount")}
    assert {s["name"] for b in bindings for s in b["subjects"]} == accounts


@pytest.mark.parametrize("name", ARGOCD_SOURCES)
def test_every_argocd_app_places_objects_where_kfp_and_kubernetes_expect(name: str) -> None:
    spec = ARGOCD_SOURCES[name]
    docs = _render_argocd(spec)
    assert_placed(docs, spec["destination"]["namespace"])
    assert _operator_env(docs)["KFP_NAMESPACE"] == KFP_NAMESPACE


@pytest.mark.parametrize("name", ARGOCD_SOURCES)
def test_argocd_creates_its_namespace_with_the_restricted_pod_security_label(name: str) -> None:
    spec = ARGOCD_SOURCES[name]
    assert "CreateNamespace=true" in spec["syncPolicy"]["syncOptions"]
    labels = spec["syncPolicy"]["managedNamespaceMetadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_overlay_places_objects_where_kfp_and_kubernetes_expect(overlay: str) -> None:
    docs = kustomize(MANIFESTS / "overlays" / overlay)
    (namespace,) = of_kind(docs, "Namespace")
    assert_placed(docs, namespace["metadata"]["name"])


@pytest.mark.parametrize(
    "args",
    [[], ["--set", "pipelines.mode=api"], ["--set", "operator.watchNamespaces={a,b}"]],
    ids=["defaults", "api-mode", "namespaced"],
)
def test_names_and_label_values_fit_63_characters_for_the_longest_release_name(
    args: list[str],
) -> None:
    docs = helm_template(*args, release=LONGEST_RELEASE)
    for doc in docs:
        assert len(doc["metadata"]["name"]) <= 63, doc["metadata"]["name"]
        for value in (doc["metadata"].get("labels") or {}).values():
            assert len(value) <= 63, (doc["metadata"]["name"], value)
    (deployment,) = of_kind(docs, "Deployment")
    lease = _operator_env(docs)["FLYWHEEL_LEASE_NAME"]
    assert lease == deployment["metadata"]["name"]


def _identity(doc: dict[str, Any]) -> tuple[str, str | None, str]:
    return doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]


def test_dev_and_prod_releases_share_a_cluster_without_sharing_an_object() -> None:
    """Namespaced operators; one release owns the CRDs and ships the pipelines."""
    dev = helm_template(
        "-f",
        str(ARGOCD / "values" / "dev.yaml"),
        "--set",
        "pipelines.mode=none",
        "--set",
        "crds.install=false",
        release="flywheel-dev",
        namespace="flywheel-dev",
    )
    prod = helm_template(
        "-f",
        str(ARGOCD / "values" / "prod.yaml"),
        "--set",
        "operator.watchNamespaces={flywheel-prod}",
        release="flywheel-prod",
        namespace="flywheel-prod",
    )
    assert not {_identity(doc) for doc in dev} & {_identity(doc) for doc in prod}
    assert of_kind(prod, "CustomResourceDefinition") and of_kind(prod, "PipelineVersion")
    assert _watched(dev).isdisjoint(_watched(prod))


def test_dockerfile_user_is_the_uid_the_chart_runs_pods_as() -> None:
    (user,) = re.findall(r"^USER (\d+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    for doc in of_kind(helm_template(), "Deployment"):
        assert doc["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(user)
