"""Register compiled pipelines with KFP through its REST API, for installs with a database store.

The Helm chart's ``api`` mode runs this as a post-install/post-upgrade hook Job, and ``--verify``
as a ``helm test``. Each input file is what ``flywheel compile`` writes: a ``Pipeline`` and its
``PipelineVersion``s, newest first. The version name carries a hash of the spec, so a version that
already exists is the same pipeline: "already exists" means "already done", and a retried Job
uploads only what is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml


class PipelineClient(Protocol):
    """The part of ``kfp.Client`` this module calls."""

    def get_pipeline_id(self, name: str) -> str | None: ...

    def list_pipelines(
        self, page_size: int = 10, filter: str | None = None, namespace: str | None = None
    ) -> Any: ...

    def upload_pipeline(
        self,
        pipeline_package_path: str,
        pipeline_name: str,
        description: str | None = None,
        namespace: str | None = None,
    ) -> Any: ...

    def upload_pipeline_version(
        self,
        pipeline_package_path: str,
        pipeline_version_name: str,
        pipeline_id: str | None = None,
        description: str | None = None,
    ) -> Any: ...

    def list_pipeline_versions(
        self, pipeline_id: str, page_size: int = 10, filter: str | None = None
    ) -> Any: ...

    def delete_pipeline_version(self, pipeline_id: str, pipeline_version_id: str) -> Any: ...


@dataclass(frozen=True)
class CompiledVersion:
    """One PipelineVersion of a manifest file, with what an upload needs."""

    pipeline: str
    version: str
    description: str
    package: list[dict[str, Any]]  # the IR YAML documents: PipelineSpec, then any PlatformSpec


def newest_version(manifest_text: str) -> CompiledVersion:
    """The newest version in a manifest file written by ``flywheel compile``."""
    # libyaml where PyYAML has it: the file holds whole compiled pipelines.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    documents = list(yaml.load_all(manifest_text, Loader=loader))
    version = next(doc for doc in documents if doc and doc.get("kind") == "PipelineVersion")
    spec = version["spec"]
    package = [spec["pipelineSpec"]] + ([spec["platformSpec"]] if "platformSpec" in spec else [])
    return CompiledVersion(
        pipeline=spec["pipelineName"],
        version=spec["versionName"],
        description=spec.get("description", ""),
        package=package,
    )


def _named(name: str) -> str:
    predicate = {"operation": "EQUALS", "key": "display_name", "stringValue": name}
    return json.dumps({"predicates": [predicate]})


def _pipeline_id(client: PipelineClient, name: str, namespace: str | None) -> str | None:
    """The pipeline's id: shared (standalone KFP), or a profile's own in multi-user KFP, which
    lists those only when asked for the namespace."""
    if namespace is None:
        return client.get_pipeline_id(name)
    found = client.list_pipelines(page_size=2, filter=_named(name), namespace=namespace)
    pipelines = getattr(found, "pipelines", None) or []
    return pipelines[0].pipeline_id if pipelines else None


def _versions_named(client: PipelineClient, pipeline_id: str, version: str) -> list[Any]:
    found = client.list_pipeline_versions(pipeline_id, page_size=10, filter=_named(version))
    return list(getattr(found, "pipeline_versions", None) or [])


def _version_exists(client: PipelineClient, pipeline_id: str, version: str) -> bool:
    return bool(_versions_named(client, pipeline_id, version))


def _drop_implicit_version(client: PipelineClient, pipeline_id: str, pipeline: str) -> None:
    """Delete the first version KFP makes with a pipeline, named after it: the same spec as our
    hashed version, which would leave two identical versions and a name nothing pins."""
    for version in _versions_named(client, pipeline_id, pipeline):
        client.delete_pipeline_version(pipeline_id, version.pipeline_version_id)


def is_registered(
    client: PipelineClient, compiled: CompiledVersion, namespace: str | None = None
) -> bool:
    pipeline_id = _pipeline_id(client, compiled.pipeline, namespace)
    return pipeline_id is not None and _version_exists(client, pipeline_id, compiled.version)


def register(
    client: PipelineClient, compiled: CompiledVersion, namespace: str | None = None
) -> bool:
    """Upload the version unless KFP has it already; True when something was uploaded.

    ``namespace``: the profile that owns the pipeline in multi-user KFP; None: shared.
    """
    with tempfile.TemporaryDirectory() as scratch:
        package = Path(scratch) / f"{compiled.version}.yaml"
        package.write_text(yaml.safe_dump_all(compiled.package, sort_keys=True))
        pipeline_id = _pipeline_id(client, compiled.pipeline, namespace)
        if pipeline_id is None:
            # KFP creates a pipeline together with a first version named after the pipeline.
            created = client.upload_pipeline(
                str(package),
                pipeline_name=compiled.pipeline,
                description=compiled.description,
                namespace=namespace,
            )
            pipeline_id = created.pipeline_id
        elif _version_exists(client, pipeline_id, compiled.version):
            _drop_implicit_version(client, pipeline_id, compiled.pipeline)
            return False
        client.upload_pipeline_version(
            str(package),
            pipeline_version_name=compiled.version,
            pipeline_id=pipeline_id,
            description=compiled.description,
        )
        # After our version exists, so a crash in between leaves a pipeline with a version;
        # a retried Job finishes the clean-up.
        _drop_implicit_version(client, pipeline_id, compiled.pipeline)
        return True


def main(argv: Sequence[str] | None = None, client: PipelineClient | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flywheel.pipelines.register", description=__doc__
    )
    parser.add_argument(
        "--endpoint", required=True, help="KFP API, e.g. http://ml-pipeline.kubeflow:8888"
    )
    parser.add_argument("--verify", action="store_true", help="only check every version exists")
    parser.add_argument(
        "--namespace", default=None, help="multi-user KFP: the profile that owns the pipelines"
    )
    parser.add_argument("manifests", nargs="+", type=Path, help="files written by flywheel compile")
    args = parser.parse_args(argv)
    if client is None:
        from flywheel.operators.kfp_runs import (
            connect,  # the projected KFP token, as the operator uses
        )

        client = connect(args.endpoint)
    missing = 0
    for path in args.manifests:
        compiled = newest_version(path.read_text())
        label = f"{compiled.pipeline} version {compiled.version}"
        if args.verify:
            found = is_registered(client, compiled, args.namespace)
            missing += not found
            print(f"{label}: {'registered' if found else 'MISSING'}")
        else:
            uploaded = register(client, compiled, args.namespace)
            print(f"{label}: {'uploaded' if uploaded else 'already registered'}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
