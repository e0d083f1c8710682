"""KFP Pipeline/PipelineVersion manifests: a new version per change, no drift without one."""

# No `from __future__ import annotations`: KFP reads component annotations as types.
from pathlib import Path

import pytest
import yaml
from deploy_checks import MANIFESTS, documents, validate_all
from kfp import dsl

from flywheel.components.errors import InvalidSpecError
from flywheel.pipelines import compile as compiling
from flywheel.pipelines import kubernetes_manifests


@dsl.component
def greet(name: str) -> str:
    return f"hello {name}"


@dsl.component
def shout(name: str) -> str:
    return f"HELLO {name}"


@dsl.pipeline(name="demo")
def demo(name: str = "world"):
    greet(name=name)


@dsl.pipeline(name="demo")
def demo_changed(name: str = "world"):
    shout(name=name)


@dsl.pipeline(name="Demo")
def demo_same_resource_name(name: str = "world"):
    greet(name=name)


def _versions(text: str) -> list[str]:
    return [doc["metadata"]["name"] for doc in documents(text) if doc["kind"] == "PipelineVersion"]


def test_recompiling_an_unchanged_pipeline_changes_nothing() -> None:
    first = kubernetes_manifests.render(demo, previous=None)
    assert kubernetes_manifests.render(demo, previous=first) == first


def test_changing_a_pipeline_adds_a_version_with_a_new_name_first() -> None:
    first = kubernetes_manifests.render(demo, previous=None)
    changed = kubernetes_manifests.render(demo_changed, previous=first)
    (old,) = _versions(first)
    new, kept = _versions(changed)
    assert new != old and kept == old
    version = documents(changed)[1]
    assert version["spec"]["versionName"] == new and new.startswith("demo-")


def test_history_keeps_only_the_newest_versions() -> None:
    text = None
    for pipeline in [demo, demo_changed] * kubernetes_manifests.HISTORY_LIMIT:
        text = kubernetes_manifests.render(pipeline, previous=text)
    assert len(_versions(text)) == 2  # returning to an old spec reuses its name
    names = iter(f"v{index}" for index in range(99))
    for _ in range(kubernetes_manifests.HISTORY_LIMIT + 2):
        docs = documents(text)
        for doc in docs[1:]:
            doc["metadata"]["name"] = next(names)  # pretend every older version differed
        text = kubernetes_manifests.render(demo, previous=kubernetes_manifests._dump(docs))
    assert len(_versions(text)) == kubernetes_manifests.HISTORY_LIMIT


def test_two_pipelines_with_one_resource_name_fail_to_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compiling, "PIPELINES", {"a": demo, "b": demo_same_resource_name})
    with pytest.raises(InvalidSpecError, match=r"'a' and 'b' both compile to .*'demo'"):
        compiling.compile_all(
            tmp_path / "ir", manifest_dirs=(tmp_path / "k8s",), component_dir=None
        )


def test_compile_writes_the_same_manifests_for_kubectl_and_the_chart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compiling, "PIPELINES", {"demo": demo})
    kubectl, chart = tmp_path / "kubectl", tmp_path / "chart"
    compiling.compile_all(tmp_path / "ir", manifest_dirs=(kubectl, chart), component_dir=None)
    assert (kubectl / "demo.yaml").read_bytes() == (chart / "demo.yaml").read_bytes()
    assert yaml.safe_load((kubectl / "Kustomization").read_text())["resources"] == ["demo.yaml"]
    assert (
        compiling.stale_files(tmp_path / "ir", manifest_dirs=(kubectl, chart), component_dir=None)
        == []
    )
    monkeypatch.setattr(compiling, "PIPELINES", {"demo": demo_changed})
    stale = compiling.stale_files(
        tmp_path / "ir", manifest_dirs=(kubectl, chart), component_dir=None
    )
    assert {problem.path for problem in stale} >= {kubectl / "demo.yaml", chart / "demo.yaml"}


def test_committed_pipeline_manifests_are_valid_for_kfp() -> None:
    for path in sorted((MANIFESTS / "pipelines").glob("*.yaml")):
        validate_all(documents(path.read_text()))
