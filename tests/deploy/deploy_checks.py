"""Render the chart and the kustomize overlays, and validate what comes out.

Built-in kinds go through ``kubernetes-validate --strict``; custom resources through ``jsonschema``
against their CRD's ``openAPIV3Schema``, made strict the way the API server is (unknown fields
are errors); each PipelineVersion's spec is parsed into KFP's own protos.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "flywheel"
MANIFESTS = ROOT / "manifests"
KFP_CRDS = ROOT.parent / "shared" / "kfp-crds"
KUBERNETES_VERSION = "1.34.0"
NAMESPACE = "flywheel"
# Kinds that have no namespace; every other kind a test renders is namespaced.
CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
}
# Kinds whose CRD is neither ours nor KFP's; the tests check what matters about them by hand.
UNVALIDATED_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


ROLE_ARN = "arn:aws:iam::111122223333:role/flywheel-operator"
DIGEST = "sha256:" + "0" * 64
POLICY = {
    "name": "nightly",
    "spec": {
        "pipeline": {"name": "flywheel-training"},
        "triggers": [{"name": "nightly", "schedule": {"cron": "0 3 * * *"}}],
    },
}
# The shipped sample ModelDeployment, as a chart value.
MODEL_DEPLOYMENT = {
    "name": "churn-model",
    "spec": yaml.safe_load((MANIFESTS / "deployments" / "modeldeployment-sample.yaml").read_text())[
        "spec"
    ],
}
ENVIRONMENTS = sorted((MANIFESTS / "argocd" / "values").glob("*.yaml"))
# Every combination values.yaml documents; each must render valid, hardened manifests.
COMBINATIONS = {
    "defaults": [],
    "api-mode": ["--set", "pipelines.mode=api"],
    "pipelines-shipped-by-another-release": ["--set", "pipelines.mode=none"],
    "irsa-digest-servicemonitor": [
        "--set",
        "irsa.enabled=true",
        "--set",
        f"irsa.roleArn={ROLE_ARN}",
        "--set",
        f"operator.image.digest={DIGEST}",
        "--set",
        "metrics.serviceMonitor.enabled=true",
    ],
    "multi-user-kfp-namespaced-operator": [
        "--set",
        "kfp.multiUser=true",
        "--set",
        "kfp.namespace=kubeflow-user-example-com",
        "--set",
        "operator.watchNamespaces={flywheel,team-a}",
    ],
    "minimal": [
        "--set",
        "podDisruptionBudget.enabled=false",
        "--set",
        "networkPolicy.enabled=false",
        "--set",
        "tests.enabled=false",
        "--set",
        "serviceAccount.create=false",
        "--set",
        "serviceAccount.name=existing",
    ],
    "policies": [
        "--set-json",
        f"policies=[{json.dumps(POLICY)}]",
        "--set-json",
        f"modelDeployments=[{json.dumps(MODEL_DEPLOYMENT)}]",
    ],
    **{f"argocd-{path.stem}": ["-f", str(path)] for path in ENVIRONMENTS},
}


def binary(name: str) -> str:
    """A binary from ``.venv/bin`` (where ``make test`` puts helm and kubectl) or from PATH."""
    local = ROOT / ".venv" / "bin" / name
    found = str(local) if local.is_file() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed: run tests/tools/fetch_k8s_binaries.py .venv/bin")
    return found


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def documents(text: str) -> list[dict[str, Any]]:
    """The YAML documents of ``text``, read by libyaml's safe loader: the chart carries every
    compiled pipeline, and PyYAML's pure-Python reader takes seconds over each rendering."""
    return [doc for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc]


def helm_template(
    *args: str, chart: Path = CHART, release: str = "flywheel", namespace: str = NAMESPACE
) -> list[dict[str, Any]]:
    """``helm template`` (release "flywheel" unless told); fails the test with helm's message."""
    result = run(binary("helm"), "template", release, str(chart), "-n", namespace, *args)
    assert result.returncode == 0, result.stderr
    return documents(result.stdout)


def helm_template_error(*args: str) -> str:
    """helm's error for values that must be rejected."""
    result = run(binary("helm"), "template", "flywheel", str(CHART), "-n", NAMESPACE, *args)
    assert result.returncode != 0, f"helm template accepted {args}"
    return result.stderr


def kustomize(folder: Path) -> list[dict[str, Any]]:
    result = run(binary("kubectl"), "kustomize", str(folder))
    assert result.returncode == 0, result.stderr
    return documents(result.stdout)


def tool(name: str) -> Any:
    """A module of tests/tools/ (a folder of scripts, not a package), loaded by file name."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The API server's pruning, as the values schema's generator applies it to the CRD.
_strict = tool("render_values_schema").strict


_OBJECT_FIELDS = {
    "apiVersion": {"type": "string"},
    "kind": {"type": "string"},
    "metadata": {"type": "object"},
}


def _crd_files() -> list[Path]:
    ours = sorted((MANIFESTS / "crds").glob("*.yaml"))
    kfp = sorted(KFP_CRDS.glob("*.yaml")) if KFP_CRDS.is_dir() else []
    return ours + kfp


@cache
def schemas_of(paths: tuple[Path, ...]) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) to the strict schema of every CRD in these files."""
    schemas = {}
    for path in paths:
        for crd in documents(path.read_text()):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                # Every object may carry these, whether or not its CRD lists them.
                schema["properties"] = {**_OBJECT_FIELDS, **schema.get("properties", {})}
                schema = _strict(schema)
                schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) to the strict schema of every CRD we can read."""
    return schemas_of(tuple(_crd_files()))


def _check_pipeline_version(doc: dict[str, Any]) -> None:
    spec = doc["spec"]
    json_format.ParseDict(spec["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    if "platformSpec" in spec:
        json_format.ParseDict(spec["platformSpec"], pipeline_spec_pb2.PlatformSpec())


def validate(doc: dict[str, Any]) -> None:
    """Raise if the object is not valid for the API server (or KFP, for pipeline versions)."""
    key = (doc["apiVersion"], doc["kind"])
    if doc["kind"] == "PipelineVersion":
        _check_pipeline_version(doc)
    if key in UNVALIDATED_KINDS:
        return
    schemas = crd_schemas()
    if key in schemas:
        jsonschema.validate(doc, schemas[key])
    elif doc["apiVersion"].startswith("pipelines.kubeflow.org/"):
        pass  # KFP's CRDs are in ../shared/kfp-crds/ only; without them the proto check stands.
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def validate_all(docs: list[dict[str, Any]]) -> None:
    assert docs, "nothing was rendered"
    for doc in docs:
        try:
            validate(doc)
        except Exception as error:  # name the object: one failure among dozens must be findable
            raise AssertionError(f"{doc['kind']}/{doc['metadata'].get('name')}: {error}") from error


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(name, pod spec) of every Pod, and of every workload's pod template."""
    found = []
    for doc in docs:
        if doc["kind"] == "Pod":
            found.append((doc["metadata"]["name"], doc["spec"]))
        elif doc["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
            found.append((doc["metadata"]["name"], doc["spec"]["template"]["spec"]))
    return found
