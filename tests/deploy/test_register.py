"""The api-mode upload: idempotent by version name, so a retried hook Job uploads only what is missing."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from deploy_checks import MANIFESTS

from flywheel.pipelines import register


def _spec(package_path: str) -> dict[str, Any]:
    """The PipelineSpec of an uploaded IR YAML file (a PlatformSpec may follow it)."""
    return next(yaml.safe_load_all(Path(package_path).read_text()))


class RecordingKfp:
    """In-memory KFP pipelines API with the calls ``register`` makes; records every upload."""

    def __init__(self) -> None:
        self.pipelines: dict[str, str] = {}  # shared pipelines, by name
        self.namespaces: dict[str, str | None] = {}  # pipeline id to its profile, if any
        self.versions: dict[str, list[str]] = {}
        self.uploads: list[tuple[str, dict[str, Any]]] = []

    def get_pipeline_id(self, name: str) -> str | None:
        """As KFP: by name among shared pipelines only."""
        pipeline_id = self.pipelines.get(name)
        return pipeline_id if pipeline_id and self.namespaces[pipeline_id] is None else None

    def list_pipelines(
        self, page_size: int = 10, filter: str | None = None, namespace: str | None = None
    ) -> Any:
        (predicate,) = json.loads(filter)["predicates"]
        pipeline_id = self.pipelines.get(predicate["stringValue"])
        found = pipeline_id is not None and self.namespaces[pipeline_id] == namespace
        return SimpleNamespace(
            pipelines=[SimpleNamespace(pipeline_id=pipeline_id)] if found else []
        )

    def upload_pipeline(
        self,
        pipeline_package_path: str,
        pipeline_name: str,
        description: str | None = None,
        namespace: str | None = None,
    ) -> Any:
        pipeline_id = f"id-{pipeline_name}"
        self.pipelines[pipeline_name] = pipeline_id
        self.namespaces[pipeline_id] = namespace
        self.versions[pipeline_id] = [pipeline_name]  # KFP names the first version after it
        self.uploads.append((pipeline_name, _spec(pipeline_package_path)))
        return SimpleNamespace(pipeline_id=pipeline_id)

    def upload_pipeline_version(
        self,
        pipeline_package_path: str,
        pipeline_version_name: str,
        pipeline_id: str | None = None,
        description: str | None = None,
    ) -> Any:
        self.versions[pipeline_id].append(pipeline_version_name)
        self.uploads.append((pipeline_version_name, _spec(pipeline_package_path)))

    def list_pipeline_versions(
        self, pipeline_id: str, page_size: int = 10, filter: str | None = None
    ) -> Any:
        (predicate,) = json.loads(filter)["predicates"]
        names = [v for v in self.versions[pipeline_id] if v == predicate["stringValue"]]
        return SimpleNamespace(
            pipeline_versions=[
                SimpleNamespace(display_name=n, pipeline_version_id=f"{pipeline_id}/{n}")
                for n in names
            ]
        )

    def delete_pipeline_version(self, pipeline_id: str, pipeline_version_id: str) -> None:
        self.versions[pipeline_id].remove(pipeline_version_id.split("/", 1)[1])


MANIFEST_FILES = sorted((MANIFESTS / "pipelines").glob("*.yaml"))


def test_first_upload_creates_pipeline_and_the_hashed_version() -> None:
    kfp = RecordingKfp()
    compiled = register.newest_version(MANIFEST_FILES[0].read_text())
    assert register.register(kfp, compiled) is True
    # KFP's implicit first version (named after the pipeline) is gone: one version, ours.
    assert kfp.versions[kfp.pipelines[compiled.pipeline]] == [compiled.version]
    uploaded = dict(kfp.uploads)[compiled.version]
    assert uploaded == compiled.package[0]  # the PipelineSpec itself, as KFP's IR YAML


def test_second_upload_of_the_same_version_is_already_done() -> None:
    kfp = RecordingKfp()
    compiled = register.newest_version(MANIFEST_FILES[0].read_text())
    register.register(kfp, compiled)
    uploads = len(kfp.uploads)
    assert register.register(kfp, compiled) is False
    assert len(kfp.uploads) == uploads


def test_verify_fails_until_every_pipeline_is_registered(capsys) -> None:
    kfp = RecordingKfp()
    files = [str(path) for path in MANIFEST_FILES]
    assert register.main(["--endpoint", "http://kfp", "--verify", *files], client=kfp) == 1
    assert register.main(["--endpoint", "http://kfp", *files], client=kfp) == 0
    assert register.main(["--endpoint", "http://kfp", "--verify", *files], client=kfp) == 0
    assert "MISSING" in capsys.readouterr().out


def test_a_retry_after_a_crash_removes_the_implicit_version_left_behind() -> None:
    kfp = RecordingKfp()
    compiled = register.newest_version(MANIFEST_FILES[0].read_text())
    register.register(kfp, compiled)
    pipeline_id = kfp.pipelines[compiled.pipeline]
    kfp.versions[pipeline_id].append(compiled.pipeline)  # as if we died before the clean-up
    assert register.register(kfp, compiled) is False
    assert kfp.versions[pipeline_id] == [compiled.version]


def test_multi_user_registers_and_verifies_in_the_profile_namespace(capsys) -> None:
    kfp = RecordingKfp()
    files = [str(path) for path in MANIFEST_FILES]
    profile = ["--namespace", "team-a"]
    assert register.main(["--endpoint", "http://kfp", *profile, *files], client=kfp) == 0
    assert set(kfp.namespaces.values()) == {"team-a"}
    assert (
        register.main(["--endpoint", "http://kfp", "--verify", *profile, *files], client=kfp) == 0
    )
    # Without the namespace, multi-user KFP lists shared pipelines only.
    assert register.main(["--endpoint", "http://kfp", "--verify", *files], client=kfp) == 1
