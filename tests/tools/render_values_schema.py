"""Fill the generated parts of ``helm/flywheel/values.schema.json``; the rest is written by hand.

A node marked ``"x-generated-from": "<source>"`` is replaced by the schema of that source, so a
value is checked exactly as the API server will check the object it ends up in:

* ``kubernetes:<file>`` — Kubernetes' own schema of a type (``toleration-v1``, ``affinity-v1``,
  ...) as bundled with kubernetes-validate (strict: unknown fields are errors); the definitions it
  refers to go under ``$defs``;
* ``crd:<file>#<property>`` — a property of our CRD's ``openAPIV3Schema`` (``manifests/crds/``),
  made strict the way the API server prunes, without the CEL rules JSON Schema cannot express.

``tests/deploy/test_chart.py`` fails when the file falls behind; run
``python tests/tools/render_values_schema.py`` after changing the CRD or the Kubernetes version.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "helm" / "flywheel" / "values.schema.json"
MARKER = "x-generated-from"
# The Kubernetes version whose schemas check the values; the chart's kubeVersion floor is older,
# and these types have not changed shape since.
KUBERNETES_VERSION = "1.34.0"
KUBERNETES_SCHEMAS = (
    Path(kubernetes_validate.__file__).parent
    / "kubernetes-json-schema"
    / f"v{KUBERNETES_VERSION}-local-strict"
)
# A type's file refers to _definitions.json, and the definitions to each other, by these prefixes.
_K8S_REFS = ("/api/_definitions.json#/$defs/", "#/$defs/")
_K8S_PREFIX = "io.k8s."
# Structural-schema keywords with no JSON Schema meaning; the API server applies them itself.
_KUBERNETES_ONLY = (
    "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-embedded-resource",
)


def strict(schema: Any) -> Any:
    """The schema with ``additionalProperties: false`` wherever the API server would prune."""
    if isinstance(schema, dict):
        result = {key: strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            result["additionalProperties"] = False
        return result
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


def _json_schema(structural: Any) -> Any:
    """A CRD's structural schema as plain JSON Schema (after :func:`strict`)."""
    if isinstance(structural, dict):
        result = {
            key: _json_schema(value)
            for key, value in structural.items()
            if key not in _KUBERNETES_ONLY
        }
        if result.pop("nullable", False) and "type" in result:
            result["type"] = [result["type"], "null"]
        if result.pop("x-kubernetes-int-or-string", False):
            result["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        return result
    if isinstance(structural, list):
        return [_json_schema(item) for item in structural]
    return structural


def crd_property(source: str) -> dict[str, Any]:
    """``<file>#<property>``: that top-level property of the CRD's (first) version schema."""
    file_name, prop = source.split("#", 1)
    crd = yaml.safe_load((ROOT / "manifests" / "crds" / file_name).read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][prop]
    return _json_schema(strict(schema))


def _rewrite_refs(schema: Any, found: set[str]) -> Any:
    """Kubernetes' ``$ref``s pointed at this file's ``$defs``; collects the names referred to."""
    if isinstance(schema, dict):
        result = {}
        for key, value in schema.items():
            if key in ("$schema", "$id"):
                continue
            if key == "$ref" and value.startswith(_K8S_REFS):
                name = value.rsplit("/", 1)[1]
                found.add(name)
                value = f"#/$defs/{name}"
            result[key] = _rewrite_refs(value, found)
        return result
    if isinstance(schema, list):
        return [_rewrite_refs(item, found) for item in schema]
    return schema


def kubernetes_type(source: str, found: set[str]) -> dict[str, Any]:
    schema = json.loads((KUBERNETES_SCHEMAS / f"{source}.json").read_text())
    return _rewrite_refs(schema, found)


def _kubernetes_definitions(names: set[str]) -> dict[str, Any]:
    """Every definition the generated types refer to, directly or through another one."""
    definitions = json.loads((KUBERNETES_SCHEMAS / "_definitions.json").read_text())["$defs"]
    done: dict[str, Any] = {}
    pending = set(names)
    while pending:
        name = pending.pop()
        more: set[str] = set()
        done[name] = _rewrite_refs(definitions[name], more)
        pending |= more - set(done)
    return dict(sorted(done.items()))


def _fill(node: Any, found: set[str]) -> Any:
    if isinstance(node, dict):
        source = node.get(MARKER)
        if source is not None:
            kind, _, name = source.partition(":")
            generated = crd_property(name) if kind == "crd" else kubernetes_type(name, found)
            return {MARKER: source, **generated}
        return {key: _fill(value, found) for key, value in node.items()}
    if isinstance(node, list):
        return [_fill(item, found) for item in node]
    return node


def render(current: str) -> str:
    """The schema file with every marked node, and the Kubernetes ``$defs``, generated anew."""
    schema = json.loads(current)
    found: set[str] = set()
    schema = _fill(schema, found)
    hand_written = {
        name: value
        for name, value in schema.get("$defs", {}).items()
        if not name.startswith(_K8S_PREFIX)
    }
    schema["$defs"] = {**hand_written, **_kubernetes_definitions(found)}
    return json.dumps(schema, indent=2) + "\n"


if __name__ == "__main__":
    TARGET.write_text(render(TARGET.read_text()))
    print(f"wrote {TARGET}", file=sys.stderr)
