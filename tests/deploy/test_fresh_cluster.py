"""A fresh cluster takes the chart in one ``helm install`` and an overlay in one ``kubectl apply -k``.

The cluster is the dev emulator serving only the built-in kinds and KFP's CRDs; it refuses an
unknown kind as the API server does (404), so what a client maps against its discovery is what it
could apply. See fresh_cluster.py for what Helm and kubectl map before they create anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_checks import (
    CHART,
    COMBINATIONS,
    KFP_CRDS,
    MANIFESTS,
    binary,
    helm_template,
    kustomize,
)
from fresh_cluster import (
    crd_kinds,
    discovered_kinds,
    fresh_cluster,
    helm_install_unmapped,
    unmapped,
)

from flywheel.operators.emulator import write_kubeconfig

pytestmark = pytest.mark.skipif(not KFP_CRDS.is_dir(), reason="KFP's CRDs are not in shared/")


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    with fresh_cluster() as cluster:
        yield cluster.url


@pytest.fixture(scope="module")
def fresh_kinds(cluster_url: str) -> set[tuple[str, str]]:
    return discovered_kinds(cluster_url)


def _request(url: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _status(url: str, method: str = "GET", body: dict[str, Any] | None = None) -> int:
    try:
        _request(url, method, body)
    except urllib.error.HTTPError as error:
        return error.code
    return 200


def test_a_fresh_cluster_serves_kfp_and_built_in_kinds_but_not_flywheels(
    fresh_kinds: set[tuple[str, str]],
) -> None:
    assert ("pipelines.kubeflow.org/v2beta1", "PipelineVersion") in fresh_kinds
    assert ("coordination.k8s.io/v1", "Lease") in fresh_kinds
    assert ("apps/v1", "Deployment") in fresh_kinds
    assert not {kind for _, kind in fresh_kinds} & {
        "RetrainPolicy",
        "KopfPeering",
        "ClusterKopfPeering",
    }


def test_the_emulator_refuses_an_unknown_kind_as_the_api_server_does(cluster_url: str) -> None:
    peering = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "p"}}
    assert _status(f"{cluster_url}/apis/kopf.dev/v1/clusterkopfpeerings", "POST", peering) == 404
    assert _status(f"{cluster_url}/apis/kopf.dev/v1") == 404
    assert _status(f"{cluster_url}/apis/kopf.dev/v1/clusterkopfpeerings/p") == 404
    # Nothing was stored, so discovery still does not list it.
    assert ("kopf.dev/v1", "ClusterKopfPeering") not in discovered_kinds(cluster_url)


@pytest.mark.parametrize("args", COMBINATIONS.values(), ids=COMBINATIONS.keys())
def test_helm_install_maps_every_object_on_a_fresh_cluster(
    fresh_kinds: set[tuple[str, str]], args: list[str]
) -> None:
    docs = helm_template(*args)
    known = fresh_kinds | {("monitoring.coreos.com/v1", "ServiceMonitor")}  # its own prerequisite
    assert helm_install_unmapped(docs, known) == []


def test_policies_in_values_wait_for_the_crd_the_same_install_brings(
    fresh_kinds: set[tuple[str, str]],
) -> None:
    """On a fresh cluster a policy is a post-install hook; once the CRD is served, a plain object
    carrying the release's ownership, so the next upgrade adopts what the hook created."""
    first = helm_template(*COMBINATIONS["policies"])
    assert helm_install_unmapped(first, fresh_kinds) == []
    (hooked,) = [doc for doc in first if doc["kind"] == "RetrainPolicy"]
    annotations = hooked["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert annotations["meta.helm.sh/release-name"] == "flywheel"
    assert annotations["meta.helm.sh/release-namespace"] == "flywheel"
    assert hooked["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    later = helm_template(
        *COMBINATIONS["policies"], "--api-versions", "flywheel.dev/v1alpha1/RetrainPolicy"
    )
    (plain,) = [doc for doc in later if doc["kind"] == "RetrainPolicy"]
    assert "helm.sh/hook" not in plain["metadata"]["annotations"]
    assert plain["spec"] == hooked["spec"]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_kubectl_apply_k_maps_every_object_on_a_fresh_cluster(
    fresh_kinds: set[tuple[str, str]], overlay: str
) -> None:
    """kubectl maps the whole overlay before applying: a CR of a CRD in the same apply fails."""
    assert unmapped(kustomize(MANIFESTS / "overlays" / overlay), fresh_kinds) == []


FLYWHEEL_KINDS = {
    ("flywheel.dev/v1alpha1", "RetrainPolicy"),
    ("flywheel.dev/v1alpha1", "ModelDeployment"),
}


def test_the_release_brings_only_flywheels_own_crds() -> None:
    assert crd_kinds(helm_template()) == FLYWHEEL_KINDS
    assert crd_kinds(kustomize(MANIFESTS / "overlays" / "prod")) == FLYWHEEL_KINDS


def test_a_crd_created_through_the_api_is_served_from_then_on() -> None:
    (crd,) = [
        doc
        for doc in helm_template()
        if doc["kind"] == "CustomResourceDefinition"
        and doc["spec"]["names"]["kind"] == "RetrainPolicy"
    ]
    with fresh_cluster() as cluster:
        _create_crd_then_a_policy(cluster.url, crd)


def _create_crd_then_a_policy(cluster_url: str, crd: dict[str, Any]) -> None:
    crds = f"{cluster_url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    created = _request(crds, "POST", crd)
    assert {c["type"] for c in created["status"]["conditions"]} >= {"Established"}
    policy = {
        "apiVersion": "flywheel.dev/v1alpha1",
        "kind": "RetrainPolicy",
        "metadata": {"name": "nightly"},
        "spec": {
            "pipeline": {"name": "flywheel-training"},
            "triggers": [{"name": "m", "manual": {}}],
        },
    }
    url = f"{cluster_url}/apis/flywheel.dev/v1alpha1/namespaces/default/retrainpolicies"
    assert _request(url, "POST", policy)["metadata"]["resourceVersion"]
    assert ("flywheel.dev/v1alpha1", "RetrainPolicy") in discovered_kinds(cluster_url)


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Iterator[Path]:
    """A kubeconfig for the real helm and kubectl, pointing at a fresh emulated cluster."""
    with fresh_cluster() as cluster:
        yield write_kubeconfig(tmp_path / "kubeconfig", cluster.url)


def _cli(kubeconfig: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [[], COMBINATIONS["policies"], ["--set", "operator.watchNamespaces={flywheel,team-a}"]],
    ids=["defaults", "policies", "namespaced"],
)
def test_the_real_helm_install_builds_the_release_on_a_fresh_cluster(
    kubeconfig: Path, args: list[str]
) -> None:
    """``--dry-run=server`` runs install.go up to creating objects: discovery, the REST mapping of
    every object, the check for existing objects. (The emulator serves OpenAPI as JSON, not the
    protobuf Helm validates against, hence --disable-openapi-validation.)"""
    result = _cli(
        kubeconfig,
        binary("helm"),
        "install",
        "flywheel",
        str(CHART),
        "-n",
        "flywheel",
        "--dry-run=server",
        "--disable-openapi-validation",
        *args,
    )
    assert result.returncode == 0, result.stderr
    assert "no matches for kind" not in result.stderr


def test_the_real_kubectl_applies_prod_then_dev_each_in_one_step_on_a_fresh_cluster(
    kubeconfig: Path,
) -> None:
    """The README's commands as written; then the sample policy, whose CRD prod brought."""
    for overlay in ("prod", "dev"):
        applied = _cli(
            kubeconfig, binary("kubectl"), "apply", "-k", str(MANIFESTS / "overlays" / overlay)
        )
        assert applied.returncode == 0, applied.stderr
        assert "deployment.apps/flywheel-operator created" in applied.stdout
    sample = MANIFESTS / "policies" / "retrainpolicy-sample.yaml"
    applied = _cli(kubeconfig, binary("kubectl"), "apply", "-n", "flywheel", "-f", str(sample))
    assert applied.returncode == 0, applied.stderr


def test_the_real_kubectl_applies_dev_alone_in_one_step_on_a_fresh_cluster(
    kubeconfig: Path,
) -> None:
    applied = _cli(
        kubeconfig, binary("kubectl"), "apply", "-k", str(MANIFESTS / "overlays" / "dev")
    )
    assert applied.returncode == 0, applied.stderr
