"""KFP's Kubernetes-native resources for every pipeline: a ``Pipeline`` and its ``PipelineVersion``s.

A PipelineVersion's spec is immutable, so a changed pipeline must become a *new* version. The
version name therefore carries a short hash of the compiled spec: an unchanged pipeline compiles to
the same bytes (no drift in Argo CD), a changed one to a new name. Each pipeline's file keeps the
newest versions first, up to ``HISTORY_LIMIT``, so a run pinned to an older version keeps working
while a deployment rolls forward and the Helm chart can keep a configurable number of them.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from kfp import compiler
from kfp.compiler.compiler_utils import KubernetesManifestOptions
from kfp.dsl.graph_component import GraphComponent

from flywheel.components.errors import InvalidSpecError

# libyaml's safe loader where PyYAML was built with it (its wheels are): the manifests carry
# whole compiled pipelines, several versions each, and the pure-Python reader takes seconds.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def yaml_documents(text: str) -> list[Any]:
    """Every YAML document of ``text``, as ``yaml.safe_load_all`` reads them."""
    return list(yaml.load_all(text, Loader=_LOADER))


API_VERSION = "pipelines.kubeflow.org/v2beta1"
HISTORY_LIMIT = 5
HASH_LENGTH = 10
# A PipelineVersion name is a DNS subdomain; KFP's CRD allows 253 characters for versionName.
_MAX_PIPELINE_NAME = 253 - 1 - HASH_LENGTH
_NOT_DNS = re.compile(r"[^a-z0-9.-]+")
# Our own writer puts this line, and only this, between documents (see ``_dump``).
_SEPARATOR = "---\n"


def resource_name(pipeline: GraphComponent) -> str:
    """The ``Pipeline`` resource's name: the pipeline's own name as a DNS-1123 subdomain."""
    name = _NOT_DNS.sub("-", pipeline.pipeline_spec.pipeline_info.name.lower()).strip(".-")
    if not name or len(name) > _MAX_PIPELINE_NAME:
        raise InvalidSpecError(
            "pipeline name",
            f"{pipeline.pipeline_spec.pipeline_info.name!r} cannot become a Kubernetes name of "
            f"1 to {_MAX_PIPELINE_NAME} characters",
        )
    return name


def spec_hash(version_spec: Mapping[str, Any]) -> str:
    """Short hash of a PipelineVersion spec, independent of key order and YAML formatting."""
    canonical = json.dumps(version_spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_LENGTH]


def _kfp_documents(pipeline: GraphComponent, name: str) -> list[dict[str, Any]]:
    """KFP's own Kubernetes manifests for the pipeline: ``[Pipeline, PipelineVersion]``."""
    options = KubernetesManifestOptions(pipeline_name=name, include_pipeline_manifest=True)
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "manifest.yaml"
        compiler.Compiler().compile(
            pipeline,
            str(target),
            kubernetes_manifest_options=options,
            kubernetes_manifest_format=True,
        )
        return yaml_documents(target.read_text())


def current_documents(pipeline: GraphComponent) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pipeline's ``Pipeline`` and the ``PipelineVersion`` its code compiles to now."""
    name = resource_name(pipeline)
    pipeline_doc, version_doc = _kfp_documents(pipeline, name)
    version_name = f"{name}-{spec_hash(version_doc['spec'])}"
    version_doc["metadata"]["name"] = version_name
    version_doc["spec"]["versionName"] = version_name
    version_doc["spec"]["displayName"] = version_name
    return pipeline_doc, version_doc


def render(pipeline: GraphComponent, previous: str | None) -> str:
    """The pipeline's manifest file: its Pipeline, then its versions newest first.

    ``previous`` is the file as committed; its versions other than the current one follow the
    current one, so recompiling an unchanged pipeline reproduces the file byte for byte.
    """
    pipeline_doc, version_doc = current_documents(pipeline)
    older = [
        doc
        for doc in (yaml_documents(previous) if previous else [])
        if doc.get("kind") == "PipelineVersion"
        and doc["metadata"]["name"] != version_doc["metadata"]["name"]
    ]
    return _dump([pipeline_doc, version_doc, *older[: HISTORY_LIMIT - 1]])


def _dump(documents: list[dict[str, Any]]) -> str:
    # Every string that could look like the separator is quoted by the emitter, so the chart can
    # split the file on lines that are exactly "---".
    return "".join(_SEPARATOR + yaml.safe_dump(doc, sort_keys=True, width=100) for doc in documents)


# `kubectl apply -f <folder>` reads only *.yaml, *.yml and *.json files; kustomize also accepts a
# file named "Kustomization", so one folder serves both `kubectl apply -f` and `-k`.
KUSTOMIZATION = "Kustomization"
# The ConfigMap that pins, for the operator, the version of each pipeline that git holds now. The
# Helm chart renders the same name for release "flywheel" (templates/pipelines/versions.yaml).
PINNED_VERSIONS_CONFIGMAP = "flywheel-pipeline-versions"
PINNED_VERSIONS_KEY = "versions.json"


def pinned_versions(manifest_texts: Iterable[str]) -> dict[str, str]:
    """Pipeline name to the version its code compiles to now: the first in each manifest file.

    This, not "newest by creation time", is the version the operator launches: after a revert the
    reverted code's version is first again, though KFP created it long ago.
    """
    pins = {}
    for text in manifest_texts:
        version = next(
            doc for doc in yaml_documents(text) if doc and doc["kind"] == "PipelineVersion"
        )
        pins[version["spec"]["pipelineName"]] = version["metadata"]["name"]
    return dict(sorted(pins.items()))


def pinned_versions_json(pins: Mapping[str, str]) -> str:
    return json.dumps(pins, sort_keys=True, separators=(",", ":"))


def kustomization(files: Mapping[str, str]) -> str:
    """The folder's kustomization: every pipeline file, so a kustomize base can include it, and
    the ConfigMap of pinned versions the operator reads (the overlays move it to its namespace)."""
    pins = pinned_versions_json(pinned_versions(files.values()))
    return yaml.safe_dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": sorted(files),
            "configMapGenerator": [
                {
                    "name": PINNED_VERSIONS_CONFIGMAP,
                    "literals": [f"{PINNED_VERSIONS_KEY}={pins}"],
                    "options": {"disableNameSuffixHash": True},
                }
            ],
        },
        sort_keys=False,
    )


def file_name(pipeline: GraphComponent) -> str:
    return f"{resource_name(pipeline)}.yaml"


def render_all(pipelines: Mapping[str, GraphComponent], history_dir: Path) -> dict[str, str]:
    """File name to content for every pipeline, keeping the version history in ``history_dir``.

    Two pipelines that would share a resource name are an error: one would silently replace the
    other's versions in the cluster.
    """
    owners: dict[str, str] = {}
    files: dict[str, str] = {}
    for key, pipeline in pipelines.items():
        name = file_name(pipeline)
        if name in owners:
            raise InvalidSpecError(
                "PIPELINES",
                f"pipelines {owners[name]!r} and {key!r} both compile to the Kubernetes "
                f"resource {resource_name(pipeline)!r}; give one of them another name",
            )
        owners[name] = key
        committed = history_dir / name
        files[name] = render(pipeline, committed.read_text() if committed.is_file() else None)
    return files
