"""``helm upgrade`` from the previous chart version in git to this one: no object changes a field it cannot.

An upgrade applies the new manifest over the old release's objects. Kubernetes refuses a change of
an immutable field (a Deployment's selector, a binding's roleRef), and KFP's webhook refuses any
change of a PipelineVersion's spec but displayName and tags; an object new to the release must not
exist already, or Helm stops on its ownership metadata. Both renders are compared object by object.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_checks import CHART, ROOT, binary, documents, helm_template

Key = tuple[str, str | None, str]
HOOK = "helm.sh/hook"


def _immutable(doc: dict[str, Any]) -> Any:
    """The part of an object an update may not change."""
    kind, spec = doc["kind"], doc.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        return spec.get("selector")
    if kind in ("RoleBinding", "ClusterRoleBinding"):
        return doc["roleRef"]
    if kind == "CustomResourceDefinition":
        return spec.get("group"), spec.get("scope"), spec.get("names", {}).get("plural")
    if kind == "PipelineVersion":
        return {k: v for k, v in spec.items() if k not in ("displayName", "tags")}
    if kind == "Job":
        return spec.get("template"), spec.get("selector")
    return None


def _objects(docs: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    """The release's objects; hooks are recreated on each run and never updated in place."""
    return {
        (doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]): doc
        for doc in docs
        if HOOK not in (doc["metadata"].get("annotations") or {})
    }


def changed_immutable_fields(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[Key]:
    before, after = _objects(old), _objects(new)
    return [
        key
        for key in before.keys() & after.keys()
        if _immutable(before[key]) != _immutable(after[key])
    ]


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=False)


def _release(is_wanted: Callable[[str], bool]) -> str | None:
    """The newest commit of the chart whose version ``is_wanted``."""
    chart = "helm/flywheel/Chart.yaml"
    for commit in _git("log", "--format=%H", "--", "helm/flywheel").stdout.decode().split():
        shown = _git("show", f"{commit}:{chart}")
        if shown.returncode == 0 and is_wanted(str(yaml.safe_load(shown.stdout)["version"])):
            return commit
    return None


def _chart_of(commit: str | None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart as ``commit`` had it, extracted to a temporary folder."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    if commit is None:
        pytest.skip("no such chart version in the git history")
    target = tmp_path_factory.mktemp("previous")
    archive = _git("archive", commit, "helm/flywheel")
    if archive.returncode != 0:
        pytest.skip(f"no git history: {archive.stderr.decode()}")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target / "helm" / "flywheel"


@pytest.fixture(scope="module")
def previous_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart of the previous release (the last committed chart version before this one):
    what users run today."""
    current = str(yaml.safe_load((ROOT / "helm/flywheel/Chart.yaml").read_text())["version"])
    return _chart_of(_release(lambda version: version != current), tmp_path_factory)


@pytest.fixture(scope="module")
def chart_0_1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The last 0.1 chart: multi-user bound the pipeline runner to ``kubeflow-edit`` there."""
    return _chart_of(_release(lambda version: version.startswith("0.1.")), tmp_path_factory)


UPGRADES = {
    "defaults": [],
    "namespaced": ["--set", "operator.watchNamespaces={flywheel,team-a}"],
    "api-mode": ["--set", "pipelines.mode=api"],
    "kfp-2.16": ["--set", "kfp.version=2.16"],
}


@pytest.mark.parametrize("args", UPGRADES.values(), ids=UPGRADES.keys())
def test_upgrading_from_the_previous_chart_changes_no_immutable_field(
    previous_chart: Path, args: list[str]
) -> None:
    old = helm_template(*args, chart=previous_chart)
    new = helm_template(*args)
    assert changed_immutable_fields(old, new) == []


def test_multi_user_upgrade_from_0_1_replaces_the_kubeflow_edit_binding_by_new_names(
    chart_0_1: Path,
) -> None:
    """A roleRef cannot change: the least-privilege Roles come with bindings of new names, and
    Helm deletes the old kubeflow-edit binding, which the new manifest no longer has."""
    args = ["--set", "kfp.multiUser=true", "--set", "kfp.namespace=kubeflow-user-example-com"]
    old = helm_template(*args, chart=chart_0_1)
    new = helm_template(*args)
    assert changed_immutable_fields(old, new) == []
    old_edit = [
        key
        for key, doc in _objects(old).items()
        if key[0] == "RoleBinding" and doc["roleRef"]["name"] == "kubeflow-edit"
    ]
    assert old_edit and not set(old_edit) & set(_objects(new))


def test_objects_new_to_the_release_do_not_exist_under_another_owner(
    previous_chart: Path,
) -> None:
    """What the new chart adds is named for this release; nothing it adds was the old chart's
    under another kind of ownership (the old CRDs it drops stay, kept by resource-policy)."""
    old, new = _objects(helm_template(chart=previous_chart)), _objects(helm_template())
    added = new.keys() - old.keys()
    # Compiled pipeline versions are new by name whenever a pipeline changes (hash-named, KFP's),
    # and a new CRD is named by its plural and our group; every other added object carries the
    # release's name.
    ours = {
        key
        for key in added
        if not new[key]["apiVersion"].startswith("pipelines.kubeflow.org/")
        and not (key[0] == "CustomResourceDefinition" and key[2].endswith(".flywheel.dev"))
    }
    assert all(name.startswith("flywheel-") for _, _, name in ours), ours
    dropped = old.keys() - new.keys()
    # The kopf peering objects go; so does a pipeline version that fell out of the kept newest.
    assert {kind for kind, _, _ in dropped} <= {
        "ClusterKopfPeering",
        "CustomResourceDefinition",
        "PipelineVersion",
    }
    for key in dropped:
        if key[0] == "CustomResourceDefinition":
            assert old[key]["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_the_chart_directory_is_the_one_under_test() -> None:
    assert (CHART / "Chart.yaml").is_file()


def test_switching_to_kfp_2_17_leaves_every_existing_pipeline_version_as_it_is(
    tmp_path: Path,
) -> None:
    """KFP 2.14-2.16 to 2.17 under Helm: the versions in the cluster (made without versionName)
    are rendered unchanged, through `lookup`; only a version new to the cluster carries the field.
    Rendered by the real helm against the dev emulator holding the 2.16 release's versions."""
    from fresh_cluster import fresh_cluster

    from flywheel.operators.emulator import write_kubeconfig

    old = [
        doc
        for doc in helm_template("--set", "kfp.version=2.16")
        if doc["kind"] == "PipelineVersion"
    ]
    new_to_the_cluster = old[0]["metadata"]["name"]
    with fresh_cluster() as cluster:
        assert cluster.emulator is not None
        for doc in old[1:]:
            # As the 2.16 release left them: owned by it.
            owned = {
                "meta.helm.sh/release-name": "flywheel",
                "meta.helm.sh/release-namespace": "flywheel",
            }
            live = {**doc, "metadata": {**doc["metadata"], "annotations": owned}}
            cluster.emulator.add(
                "pipelines.kubeflow.org/v2beta1/pipelineversions", "kubeflow", live
            )
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", cluster.url)
        result = subprocess.run(
            [
                binary("helm"),
                "template",
                "flywheel",
                str(CHART),
                "-n",
                "flywheel",
                "--dry-run=server",
            ],
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    new = [doc for doc in documents(result.stdout) if doc["kind"] == "PipelineVersion"]
    assert changed_immutable_fields(old[1:], new) == []  # the versions the cluster holds
    with_field = {doc["metadata"]["name"] for doc in new if "versionName" in doc["spec"]}
    assert with_field == {new_to_the_cluster}
