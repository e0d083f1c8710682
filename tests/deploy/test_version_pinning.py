"""The version that runs is the version in git: compile, change, compile, revert, on the KFP
stand-in, with versions created the way a GitOps sync creates them (name order, old ones kept).

KFP's own "latest" and a "created_at desc" lookup both follow creation time; after a revert the
reverted code's version is the *oldest*, and on a fresh sync the newest is whichever hash sorts
last. The operator launches the pinned version instead: the first in the compiled file.
"""

# No `from __future__ import annotations`: kfp reads the component's annotations at runtime.
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_checks import CHART, MANIFESTS, helm_template, of_kind
from kfp import dsl

from flywheel.operators.kfp_runs import PipelineNotFound, RunLauncher, connect
from flywheel.operators.kfp_standin import KfpStandIn
from flywheel.operators.policy import PipelineRef
from flywheel.pipelines import kubernetes_manifests

NAME = "pinning-demo"


@dsl.component(base_image="python:3.11")
def greet(text: str) -> str:
    return text


def _pipeline(greeting: str) -> Any:
    """The same pipeline before and after a code change: only a default differs."""

    @dsl.pipeline(name=NAME)
    def demo(text: str = greeting) -> None:
        greet(text=text)

    return demo


def _versions(manifest: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (doc["metadata"]["name"], doc["spec"]["pipelineSpec"])
        for doc in yaml.safe_load_all(manifest)
        if doc and doc["kind"] == "PipelineVersion"
    ]


def _ref(version: str | None = None, version_ref: str | None = None) -> PipelineRef:
    return PipelineRef(
        name=None if version_ref else NAME,
        version=version,
        pipeline_version_ref=version_ref,
        experiment="Default",
        service_account=None,
        parameters={},
    )


class GitOps:
    """A git checkout's compiled file, synced to KFP, and the pins the operator is given."""

    def __init__(self, kfp: KfpStandIn, pins: Path, profile: str | None = None) -> None:
        self.kfp, self.pins, self.profile = kfp, pins, profile
        self.launcher = RunLauncher(connect(kfp.url), pins=pins, pipelines_in=profile)
        self.runs = 0

    def commit(self, manifest: str) -> None:
        self.kfp.sync_pipeline(NAME, _versions(manifest), namespace=self.profile)
        pins = kubernetes_manifests.pinned_versions([manifest])
        self.pins.write_text(kubernetes_manifests.pinned_versions_json(pins))

    def run_spec(self, ref: PipelineRef | None = None) -> dict[str, Any]:
        """The pipeline spec a new run launched by the operator gets."""
        self.runs += 1
        resolved = self.launcher.resolve(ref or _ref())
        run_id, created = self.launcher.ensure(f"run-{self.runs}", resolved, {}, None)
        assert created
        (run,) = [r for r in self.kfp.runs.values() if r["run_id"] == run_id]
        return self.kfp.version_spec(run["pipeline_version_reference"]["pipeline_version_id"])

    def newest_by_creation(self) -> dict[str, Any]:
        (versions,) = self.kfp.versions.values()
        return max(versions, key=lambda v: v["created_at"])["pipeline_spec"]


@pytest.fixture
def gitops(tmp_path: Path):
    with KfpStandIn() as kfp:
        yield GitOps(kfp, tmp_path / "versions.json")


def _spec(manifest: str) -> dict[str, Any]:
    return _versions(manifest)[0][1]


def test_new_runs_use_the_code_in_git_through_change_and_revert(gitops: GitOps) -> None:
    first = kubernetes_manifests.render(_pipeline("hello"), None)
    changed = kubernetes_manifests.render(_pipeline("bonjour"), first)
    assert _spec(first) != _spec(changed)

    gitops.commit(first)
    assert gitops.run_spec() == _spec(first)

    gitops.commit(changed)  # both versions in git and in KFP, the new one first
    assert gitops.run_spec() == _spec(changed)

    # Revert by recompiling the old code: its version comes first again, though KFP made it
    # first of all; the newest by creation time would still be the changed code.
    reverted = kubernetes_manifests.render(_pipeline("hello"), changed)
    assert _spec(reverted) == _spec(first)
    gitops.commit(reverted)
    assert gitops.newest_by_creation() == _spec(changed)
    assert gitops.run_spec() == _spec(first)

    # `git revert` of the change: the file is the first one again and the sync prunes the rest.
    gitops.commit(first)
    assert gitops.run_spec() == _spec(first)


def test_fresh_sync_runs_the_first_version_whatever_its_hash_sorts_to(gitops: GitOps) -> None:
    older = kubernetes_manifests.render(_pipeline("hello"), None)
    newer = kubernetes_manifests.render(_pipeline("bonjour"), older)
    gitops.commit(newer)  # one sync creates both versions, in name order
    assert gitops.run_spec() == _spec(newer)


def test_a_named_version_or_pipeline_version_ref_runs_exactly_that_version(
    gitops: GitOps,
) -> None:
    older = kubernetes_manifests.render(_pipeline("hello"), None)
    newer = kubernetes_manifests.render(_pipeline("bonjour"), older)
    gitops.commit(newer)
    (old_name, old_spec) = _versions(newer)[1]
    assert gitops.run_spec(_ref(version=old_name)) == old_spec
    assert gitops.run_spec(_ref(version_ref=old_name)) == old_spec


def test_without_a_pin_several_versions_are_refused_not_guessed(gitops: GitOps) -> None:
    older = kubernetes_manifests.render(_pipeline("hello"), None)
    gitops.commit(kubernetes_manifests.render(_pipeline("bonjour"), older))
    gitops.pins.unlink()
    with pytest.raises(PipelineNotFound, match="several versions and none is pinned"):
        gitops.launcher.resolve(_ref())
    with pytest.raises(PipelineNotFound, match="no KFP pipeline has a version named 'nope'"):
        gitops.launcher.resolve(_ref(version_ref="nope"))


def test_multi_user_kfp_finds_the_profiles_pipeline_only_in_its_namespace(
    tmp_path: Path,
) -> None:
    manifest = kubernetes_manifests.render(_pipeline("hello"), None)
    with KfpStandIn() as kfp:
        GitOps(kfp, tmp_path / "versions.json", profile="team-a").commit(manifest)
        in_profile = GitOps(kfp, tmp_path / "versions.json", profile="team-a")
        assert in_profile.run_spec() == _spec(manifest)
        shared_only = GitOps(kfp, tmp_path / "versions.json")
        with pytest.raises(PipelineNotFound, match="no KFP pipeline named"):
            shared_only.launcher.resolve(_ref())


def test_chart_and_overlays_pin_the_first_version_of_every_compiled_file() -> None:
    texts = [path.read_text() for path in sorted((CHART / "files" / "pipelines").glob("*.yaml"))]
    expected = kubernetes_manifests.pinned_versions(texts)
    (configmap,) = [
        doc
        for doc in of_kind(helm_template(), "ConfigMap")
        if doc["metadata"]["name"] == kubernetes_manifests.PINNED_VERSIONS_CONFIGMAP
    ]
    assert json.loads(configmap["data"]["versions.json"]) == expected
    kustomization = yaml.safe_load((MANIFESTS / "pipelines" / "Kustomization").read_text())
    (generator,) = kustomization["configMapGenerator"]
    (literal,) = generator["literals"]
    assert json.loads(literal.split("=", 1)[1]) == expected
    (deployment,) = of_kind(helm_template(), "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "pipeline-versions")
    assert env["FLYWHEEL_PIPELINE_VERSIONS"] == f"{mount['mountPath']}/versions.json"
