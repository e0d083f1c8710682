"""OpenAPI v3 and v2 documents of custom resources, built from their CRD files.

The dev emulator serves them, so that ``kubectl apply`` can validate and ``kubectl explain``
can read the schema, as against a cluster. Only what kubectl looks up is written: each kind's
schema with its group-version-kind, and its paths with the write parameters.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import yaml

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
# The query parameters the API server accepts on writes; kubectl looks for fieldValidation here
# to decide whether the server validates fields itself.
WRITE_PARAMETERS = [
    {"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
    for name in ("dryRun", "fieldManager", "fieldValidation")
]


class OpenApi:
    """OpenAPI v3 (per group version) and v2 documents of the custom resources, from CRD files."""

    def __init__(self, crd_files: list[Path]) -> None:
        # group/version -> (schema name -> schema, path -> operations)
        self.groups: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        for path in crd_files:
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    self.add(doc)

    def add(self, crd: dict[str, Any]) -> None:
        """Serve one more CRD's schemas and paths: a CRD file's, or one created through the API."""
        spec = crd["spec"]
        group, names = spec["group"], spec["names"]
        reverse = ".".join(reversed(group.split("."))) if group else "io.k8s.api.core"
        for version in spec["versions"]:
            group_version = f"{group}/{version['name']}" if group else version["name"]
            schemas, paths = self.groups.setdefault(group_version, ({}, {}))
            schema = copy.deepcopy(version.get("schema", {}).get("openAPIV3Schema", {}))
            schema.setdefault("properties", {}).update(
                apiVersion={"type": "string", "description": "APIVersion of the object."},
                kind={"type": "string", "description": "Kind of the object."},
                metadata={"$ref": f"#/components/schemas/{OBJECT_META}"},
            )
            gvk = {"group": group, "version": version["name"], "kind": names["kind"]}
            schema["x-kubernetes-group-version-kind"] = [gvk]
            schema_name = f"{reverse}.{version['name']}.{names['kind']}"
            schemas[schema_name] = schema
            schemas[OBJECT_META] = {
                "type": "object",
                "description": "Standard object metadata.",
                "x-kubernetes-preserve-unknown-fields": True,
            }
            scope = "/namespaces/{namespace}" if spec["scope"] == "Namespaced" else ""
            base = f"/{_prefix(group_version)}/{group_version}{scope}/{names['plural']}"
            body = {
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}
                }
            }

            paths[base] = {
                "post": _operation("post", WRITE_PARAMETERS, body, gvk),
                "get": _operation("list", [], body, gvk),
            }
            paths[f"{base}/{{name}}"] = {
                "get": _operation("get", [], body, gvk),
                "put": _operation("put", WRITE_PARAMETERS, body, gvk),
                "patch": _operation("patch", WRITE_PARAMETERS, body, gvk),
                "delete": _operation("delete", WRITE_PARAMETERS[:1], body, gvk),
            }

    def add_builtin(self, group_version: str, plural: str, kind: str, namespaced: bool) -> None:
        """Serve a built-in kind: its paths, with the write parameters, and an open schema.

        kubectl reads a kind's PATCH operation to learn that the server validates fields itself
        (``fieldValidation``), and then needs no schema of its own for the kind.
        """
        group, _, version = group_version.rpartition("/")
        schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        self.add(
            {
                "spec": {
                    "group": group,
                    "names": {"kind": kind, "plural": plural},
                    "scope": "Namespaced" if namespaced else "Cluster",
                    "versions": [{"name": version, "schema": {"openAPIV3Schema": schema}}],
                }
            }
        )

    def document(self, path: str) -> dict[str, Any] | None:
        """The answer to ``GET path`` under ``/openapi/``; ``None`` for an unknown path."""
        if path.rstrip("/") == "/openapi/v3":
            return {
                "paths": {
                    f"{_prefix(gv)}/{gv}": {
                        "serverRelativeURL": f"/openapi/v3/{_prefix(gv)}/{gv}?hash={_hash(gv)}"
                    }
                    for gv in self.groups
                }
            }
        if path.startswith(("/openapi/v3/apis/", "/openapi/v3/api/")):
            relative = path.removeprefix("/openapi/v3/").rstrip("/")
            found = self.groups.get(relative.split("/", 1)[1])
            if found is None:
                return None
            schemas, paths = found
            return {
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": "v1.30.0"},
                "paths": paths,
                "components": {"schemas": schemas},
            }
        if path.rstrip("/") == "/openapi/v2":
            definitions = {
                name: _v2(schema)
                for schemas, _ in self.groups.values()
                for name, schema in schemas.items()
            }
            return {
                "swagger": "2.0",
                "info": {"title": "Kubernetes", "version": "v1.30.0"},
                "paths": {},
                "definitions": definitions,
            }
        return None


def _operation(
    action: str, parameters: list[dict[str, Any]], body: dict[str, Any], gvk: dict[str, str]
) -> dict[str, Any]:
    """One operation of a path; kubectl finds the operations of a kind by the two extensions."""
    return {
        "parameters": parameters,
        "requestBody": body,
        "responses": {},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    }


def _v2(schema: Any) -> Any:
    """A v3 schema as a v2 definition: only the ``$ref`` prefix differs for these schemas."""
    if isinstance(schema, dict):
        return {
            k: (v.replace("#/components/schemas/", "#/definitions/") if k == "$ref" else _v2(v))
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_v2(v) for v in schema]
    return schema


def _prefix(group_version: str) -> str:
    """``api`` for the core group (``v1``), ``apis`` for every named group."""
    return "apis" if "/" in group_version else "api"


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16].upper()
