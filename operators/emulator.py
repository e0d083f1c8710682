"""A local Kubernetes API emulator for ``--dev`` and tests: kmock, with what kopf and kubectl need.

kmock 0.8 (the emulator by kopf's author) is close, but not enough for a real operator:

* it stamps no ``resourceVersion``, ``uid``, ``generation`` or ``creationTimestamp`` (kopf's
  JSON-patches test the resourceVersion, and status carries ``observedGeneration``);
* it treats ``watch=true`` as a watch, but the official client sends ``watch=True``;
* it knows no core resources unless declared (``/api/v1/namespaces``, events);
* it ignores ``generateName`` (kopf's events have no name, so all but the first collide);
* it ignores a ``resourceVersion`` in an update, where the API server answers 409 Conflict;
* it keeps every request for assertions and matches each new one against them all, which
  slows an operator's steady traffic down quadratically;
* its core ``groupVersion`` reads ``/v1`` and its lists have no ``kind``, which kubectl rejects;
* it stores what ``--dry-run=server`` sends, and answers ``kubectl get`` without the CRD's
  printer columns (kubectl asks for a server-side Table);
* it serves no OpenAPI, which ``kubectl apply`` (validation) and ``kubectl explain`` need: here
  v3 (``/openapi/v3``) and v2 (``/openapi/v2``) documents are built from the CRD files, and a
  write with ``fieldValidation=Strict`` (kubectl's default) is refused for an undeclared field;
* it stores an object of any resource it is sent, where the API server answers 404 for a resource
  it does not serve: here only declared resources (the built-in kinds below, the CRD files and
  CRDs created through the API) exist, as on a fresh cluster, so "install the CRD first" bugs show;
* its ``/version`` says Kubernetes 1.26, older than the chart's ``kubeVersion`` floor: here 1.34;
* it does not understand ``PUT`` (client-go's and the Python client's ``replace``, which leader
  election uses on its Lease): here a PUT replaces the object, conditional on its resourceVersion.

Custom resources are declared from their CRD files, so the emulator serves exactly what the
manifests define; a CustomResourceDefinition created through the API declares its resources from
then on, as the API server does once it is established. Schema and CEL validation are not emulated
(the tests check them separately). Needs the ``dev`` extra (kmock).
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import json
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp.test_utils
import aiohttp.web
import attrs
import jsonpatch
import jsonpath_ng.ext
import kmock
import yaml
from kmock._internal import dicts, enums, rendering
from kmock._internal.k8s import (
    KubernetesError,
    KubernetesObjectNotFoundError,
)

from flywheel.operators.openapi import OpenApi

CRD_DIR = Path(__file__).resolve().parent.parent / "manifests" / "crds"
NAMESPACES = re.compile(r"/api/v1/namespaces(/[^/]+)?/?")
WATCH_TIMEOUT_SECONDS = 60.0
KUBERNETES_VERSION = "v1.34.0"
ALL_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}
CRDS = "apiextensions.k8s.io/v1/customresourcedefinitions"
# The built-in resources a fresh cluster serves that Flywheel's paths use: its manifests, kopf's
# events and the operator's leader-election Lease. Anything else is unknown, as on a cluster
# without that API.
_BUILTINS = {
    "v1/configmaps": ("ConfigMap", True),
    "v1/secrets": ("Secret", True),
    "v1/serviceaccounts": ("ServiceAccount", True),
    "v1/services": ("Service", True),
    "v1/pods": ("Pod", True),
    "apps/v1/deployments": ("Deployment", True),
    "batch/v1/jobs": ("Job", True),
    "policy/v1/poddisruptionbudgets": ("PodDisruptionBudget", True),
    "networking.k8s.io/v1/networkpolicies": ("NetworkPolicy", True),
    "rbac.authorization.k8s.io/v1/roles": ("Role", True),
    "rbac.authorization.k8s.io/v1/rolebindings": ("RoleBinding", True),
    "rbac.authorization.k8s.io/v1/clusterroles": ("ClusterRole", False),
    "rbac.authorization.k8s.io/v1/clusterrolebindings": ("ClusterRoleBinding", False),
    CRDS: ("CustomResourceDefinition", False),
    "coordination.k8s.io/v1/leases": ("Lease", True),
}
CORE = {
    "v1/namespaces": kmock.ResourceInfo(
        kind="Namespace",
        singular="namespace",
        namespaced=False,
        shortnames={"ns"},
        verbs={"get", "list", "watch", "create"},
    ),
    "v1/events": kmock.ResourceInfo(
        kind="Event", singular="event", namespaced=True, verbs={"create", "get", "list", "watch"}
    ),
    **{
        key: kmock.ResourceInfo(
            kind=kind, singular=kind.lower(), namespaced=namespaced, verbs=ALL_VERBS
        )
        for key, (kind, namespaced) in _BUILTINS.items()
    },
}
# kopf's peering objects: declared only for an emulator that seeds one (EmulatorThread(peering=)).
KOPF_PEERING = {
    "kopf.dev/v1/kopfpeerings": kmock.ResourceInfo(
        kind="KopfPeering", singular="kopfpeering", namespaced=True, verbs=ALL_VERBS
    ),
    "kopf.dev/v1/clusterkopfpeerings": kmock.ResourceInfo(
        kind="ClusterKopfPeering", singular="clusterkopfpeering", namespaced=False, verbs=ALL_VERBS
    ),
}


def crd_documents(path: Path) -> Iterator[dict[str, Any]]:
    """The CustomResourceDefinitions of a file."""
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "CustomResourceDefinition":
            yield doc


def crd_versions(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``group/version/plural`` and the version's entry, for every version of a CRD file."""
    for doc in crd_documents(path):
        spec = doc["spec"]
        for version in spec["versions"]:
            yield f"{spec['group']}/{version['name']}/{spec['names']['plural']}", version


def unknown_fields(schema: dict[str, Any], value: Any, path: str) -> Iterator[str]:
    """Paths of fields the structural schema does not declare (what ``Strict`` refuses)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            if key in properties:
                yield from unknown_fields(properties[key], sub, f"{path}.{key}")
            elif isinstance(extra, dict):
                yield from unknown_fields(extra, sub, f"{path}.{key}")
            elif extra is not True:
                yield f"{path}.{key}".lstrip(".")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            yield from unknown_fields(schema["items"], item, f"{path}[{i}]")


def crd_resources(path: Path) -> Iterator[tuple[str, kmock.ResourceInfo]]:
    """Resource declarations (``group/version/plural``, info) for every version of a CRD file."""
    for doc in crd_documents(path):
        yield from _declarations(doc)


def _declarations(crd: dict[str, Any]) -> Iterator[tuple[str, kmock.ResourceInfo]]:
    spec = crd["spec"]
    names = spec["names"]
    for version in spec["versions"]:
        info = kmock.ResourceInfo(
            kind=names["kind"],
            singular=names.get("singular"),
            namespaced=spec["scope"] == "Namespaced",
            shortnames=set(names.get("shortNames", [])),
            categories=set(names.get("categories", [])),
            subresources=set(version.get("subresources", {})),
            verbs=ALL_VERBS,
        )
        yield f"{spec['group']}/{version['name']}/{names['plural']}", info


@attrs.define(kw_only=True)
class ClusterEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with object metadata, ``watch=True``, core resources and CRD files."""

    crd_files: list[Path] = attrs.field(factory=lambda: sorted(CRD_DIR.glob("*.yaml")))
    # Resources served besides the built-in ones and the CRD files' (kopf's peering, for one).
    extra_resources: dict[str, kmock.ResourceInfo] = attrs.field(factory=dict)
    _versions: Iterator[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _columns: dict[Any, list[dict[str, Any]]] = attrs.field(factory=dict, init=False)
    _schemas: dict[Any, dict[str, Any]] = attrs.field(factory=dict, init=False)
    _openapi: OpenApi = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for key, info in {**CORE, **self.extra_resources}.items():
            self.resources[key] = info
        self._openapi = OpenApi(self.crd_files)
        for key, info in {**CORE, **self.extra_resources}.items():
            resource = kmock.resource(key)
            group_version = f"{resource.group}/{resource.version}".lstrip("/")
            self._openapi.add_builtin(group_version, resource.plural, info.kind, info.namespaced)
        for path in self.crd_files:
            for crd in crd_documents(path):
                self._declare(crd)

    def _declare(self, crd: dict[str, Any]) -> None:
        """Serve a CRD's resources: discovery, printer columns, the schema for Strict writes."""
        for key, info in _declarations(crd):
            self.resources[key] = info
        spec = crd["spec"]
        for version in spec["versions"]:
            key = kmock.resource(f"{spec['group']}/{version['name']}/{spec['names']['plural']}")
            self._columns[key] = version.get("additionalPrinterColumns", [])
            self._schemas[key] = version.get("schema", {}).get("openAPIV3Schema", {})

    def serves(self, api_version: str, kind: str) -> bool:
        """Whether discovery maps this kind, as a client's REST mapper would look it up."""
        group, _, version = api_version.rpartition("/")
        return any(
            info.kind == kind and key.group == group and key.version == version
            for key, info in self.resources.items()
        )

    def add(self, resource: str, namespace: str | None, body: dict[str, Any]) -> None:
        """Store an object directly, stamped as if created through the API."""
        body = copy.deepcopy(body)
        self._stamp_new(body, namespace)
        self.objects[resource, namespace, body["metadata"]["name"]] = body

    def _stamp_new(self, body: dict[str, Any], namespace: str | None) -> None:
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        if namespace is not None:
            meta.setdefault("namespace", namespace)
        meta.update(
            uid=str(uuid.uuid4()),
            resourceVersion=str(next(self._versions)),
            generation=1,
            creationTimestamp=_now(),
        )

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if raw_request.method == "GET" and raw_request.path.startswith("/openapi/"):
            await raw_request.read()
            document = self._openapi.document(raw_request.path)
            if document is None:
                return await self._render_error(KubernetesObjectNotFoundError())
            return aiohttp.web.json_response(document)
        # kmock cannot parse the path of the namespace list or of one namespace.
        if raw_request.method == "GET" and NAMESPACES.fullmatch(raw_request.path):
            return await self._serve_namespaces(raw_request)
        if raw_request.method == "POST" and raw_request.path.rstrip("/") == "/api/v1/namespaces":
            return await self._create_namespace(raw_request)
        # kmock recognises only the lowercase spelling of a watch request.
        if raw_request.query.get("watch", "").lower() in ("true", "1"):
            url = raw_request.rel_url.update_query(watch="true")
            raw_request = raw_request.clone(rel_url=url)
        return await super().__call__(raw_request)

    async def _serve_namespaces(
        self, raw_request: aiohttp.web.BaseRequest
    ) -> aiohttp.web.StreamResponse:
        await raw_request.read()
        name = raw_request.path.rstrip("/").split("/")[-1]
        items = [
            obj.raw
            for (res, _, obj_name), obj in self.objects.items()
            if res == kmock.resource("v1/namespaces")
            and not obj.deleted
            and (name == "namespaces" or obj_name == name)
        ]
        if name == "namespaces" and raw_request.query.get("watch", "").lower() in ("true", "1"):
            return await self._watch_namespaces(raw_request, items)
        if name == "namespaces":
            return aiohttp.web.json_response(
                {
                    "apiVersion": "v1",
                    "kind": "NamespaceList",
                    "metadata": {"resourceVersion": "1"},
                    "items": items,
                }
            )
        if items:
            return aiohttp.web.json_response(items[0])
        return await self._render_error(KubernetesObjectNotFoundError())

    async def _create_namespace(
        self, raw_request: aiohttp.web.BaseRequest
    ) -> aiohttp.web.StreamResponse:
        """``kubectl create namespace``, or a Namespace in ``kubectl apply``: 409 if it exists."""
        body = await raw_request.json()
        name = (body.get("metadata") or {}).get("name", "")
        key = (kmock.resource("v1/namespaces"), None, name)
        if key in self.objects and not self.objects[key].deleted:
            return await self._render_error(
                KubernetesError(
                    status=409,
                    reason="AlreadyExists",
                    message=f'namespaces "{name}" already exists',
                )
            )
        body.setdefault("status", {"phase": "Active"})
        if raw_request.query.get("dryRun") == "All":
            self._stamp_new(body, None)
            return aiohttp.web.json_response(body, status=201)
        self.add("v1/namespaces", None, body)
        return aiohttp.web.json_response(self.objects[key].raw, status=201)

    async def _watch_namespaces(
        self, raw_request: aiohttp.web.BaseRequest, items: list[dict[str, Any]]
    ) -> aiohttp.web.StreamResponse:
        """Namespaces never change here: stream them once, then idle until the watch times out."""
        response = aiohttp.web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(raw_request)
        for item in items:
            await response.write(json.dumps({"type": "ADDED", "object": item}).encode() + b"\n")
        timeout = float(raw_request.query.get("timeoutSeconds") or WATCH_TIMEOUT_SECONDS)
        await asyncio.sleep(min(timeout, WATCH_TIMEOUT_SECONDS))
        await response.write_eof()
        return response

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        # Creation and updates get real metadata before kmock stores and broadcasts them.
        # The rest (reads, watches, deletion with finalizers) is kmock's own behaviour.
        if self._unserved(request):
            self._forget(request)
            raise KubernetesError(
                status=404,
                reason="NotFound",
                message="the server could not find the requested resource",
            )
        if request.resource is not None and request.method == enums.method.PUT and request.name:
            try:
                return aiohttp.web.json_response(await self._replace(request))
            finally:
                self._forget(request)
        unknown = self._strictly_unknown(request)
        if unknown:
            self._forget(request)
            raise KubernetesError(
                status=400,
                reason="BadRequest",
                message="strict decoding error: "
                + ", ".join(f'unknown field "{field}"' for field in unknown),
            )
        if request.resource is not None and request.params.get("dryRun") == "All":
            try:
                return aiohttp.web.json_response(await self._dry_run(request))
            finally:
                self._forget(request)
        if (
            request.resource is not None
            and request.action in (enums.action.FETCH, enums.action.LIST)
            and "as=Table" in request.headers.get("Accept", "")
        ):
            try:
                return aiohttp.web.json_response(await self._table(request))
            finally:
                self._forget(request)
        try:
            if request.resource is not None and request.action == enums.action.CREATE:
                self._stamp_new(request.data, request.namespace)
                if request.resource == kmock.resource(CRDS) and isinstance(request.data, dict):
                    self._establish(request.data)
            elif request.resource is not None and request.action == enums.action.UPDATE:
                await self._update(request)
            return await super()._handle(request)
        finally:
            self._forget(request)

    def _unserved(self, request: rendering.Request) -> bool:
        """A request for an object of a resource this server does not serve (the API: 404)."""
        return (
            request.resource is not None
            and request.resource.plural is not None
            and (request.action is not None or request.name is not None)
            and request.resource not in self.resources
        )

    def _establish(self, crd: dict[str, Any]) -> None:
        """A created CRD: its resources are served from now on, and it reads as Established."""
        self._declare(crd)
        self._openapi.add(crd)
        crd.setdefault("status", {})["conditions"] = [
            {"type": kind, "status": "True", "reason": kind, "lastTransitionTime": _now()}
            for kind in ("NamesAccepted", "Established")
        ]

    async def _replace(self, request: rendering.Request) -> dict[str, Any]:
        """``PUT``: the whole object (or its status) replaced, if its resourceVersion still matches.

        As the API server: identity and creation metadata are kept, a changed spec bumps the
        generation, and a PUT of the object leaves a status subresource's status alone.
        """
        assert request.resource is not None
        key = (request.resource, request.namespace, request.name)
        body = request.data if isinstance(request.data, dict) else {}
        async with self._lock:
            if key not in self._objects or self._objects[key].deleted:
                raise KubernetesObjectNotFoundError()
            old = copy.deepcopy(self._objects[key].raw)
            self._check_precondition(old, body)
            if request.subresource == "status":
                new = {**old, "status": copy.deepcopy(body.get("status"))}
            else:
                new = copy.deepcopy(body)
                if "status" in self.resources[request.resource].subresources:
                    new["status"] = old.get("status")
            new = {k: v for k, v in new.items() if v is not None}
            meta = new.setdefault("metadata", {})
            for field in ("name", "namespace", "uid", "creationTimestamp", "generation"):
                if field in old.get("metadata", {}):
                    meta[field] = old["metadata"][field]
            meta["resourceVersion"] = str(next(self._versions))
            if old.get("spec") != new.get("spec"):
                meta["generation"] = int(meta.get("generation", 1)) + 1
            self._objects[key].patch(_full_replacement(old, new))
            raw = copy.deepcopy(self._objects[key].raw)
            await self._buses[request.resource].put({"type": "MODIFIED", "object": raw})
        return raw

    @staticmethod
    def _check_precondition(old: dict[str, Any], body: dict[str, Any]) -> None:
        """A resourceVersion in the body is a precondition of the write: 409 when it is stale."""
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        current = old.get("metadata", {}).get("resourceVersion")
        if wanted is not None and wanted != current:
            raise KubernetesError(
                status=409,
                reason="Conflict",
                message=f"the object has been modified (resourceVersion {current}, "
                f"not {wanted}); please apply your changes to the latest version",
            )

    def _strictly_unknown(self, request: rendering.Request) -> list[str]:
        """Undeclared fields of a create or update sent with ``fieldValidation=Strict``."""
        if (
            request.params.get("fieldValidation") != "Strict"
            or request.resource not in self._schemas
            or request.action not in (enums.action.CREATE, enums.action.UPDATE)
            or not isinstance(request.data, dict)
        ):
            return []
        body = {
            k: v for k, v in request.data.items() if k not in ("apiVersion", "kind", "metadata")
        }
        return list(unknown_fields(self._schemas[request.resource], body, ""))

    async def _dry_run(self, request: rendering.Request) -> dict[str, Any]:
        """What a write would store, without storing it (``dryRun=All``)."""
        if request.action == enums.action.CREATE:
            body = copy.deepcopy(request.data)
            self._stamp_new(body, request.namespace)
            return body
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key not in self._objects or self._objects[key].deleted:
                raise KubernetesObjectNotFoundError()
            old = copy.deepcopy(self._objects[key].raw)
        if request.action == enums.action.UPDATE and isinstance(request.data, dict):
            return copy.deepcopy(dict(dicts.patch_dict(old, request.data)))
        return old

    async def _table(self, request: rendering.Request) -> dict[str, Any]:
        """A ``meta.k8s.io/v1`` Table with the CRD's printer columns, as ``kubectl get`` asks."""
        assert request.resource is not None
        columns = [
            {"name": "Name", "type": "string", "format": "name", "priority": 0},
            *[
                {"name": c["name"], "type": c["type"], "format": "", "priority": 0}
                for c in self._columns.get(request.resource, [])
                if c["name"] != "Age"
            ],
            {"name": "Age", "type": "date", "format": "", "priority": 0},
        ]
        shown = [c for c in self._columns.get(request.resource, []) if c["name"] != "Age"]
        if request.action == enums.action.FETCH:
            items = [await self._serve_fetch(request)]
        else:
            items = (await self._serve_list(request))["items"]
        rows = [
            {
                "cells": [
                    item["metadata"]["name"],
                    *[_cell(item, c["jsonPath"], c["type"]) for c in shown],
                    _age(item["metadata"].get("creationTimestamp")),
                ],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": item["metadata"],
                },
            }
            for item in items
        ]
        return {
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": str(next(self._versions))},
            "columnDefinitions": columns,
            "rows": rows,
        }

    def _forget(self, request: rendering.Request) -> None:
        """Drop a served request from kmock's history, which exists for assertions in tests.

        kmock matches each request against all requests seen so far, so an operator's steady
        traffic slows it quadratically; only in-flight requests need to be remembered here.
        """
        for history in [self._requests, *(getattr(p, "_requests", []) for p in self._payloads)]:
            for i, seen in enumerate(history):
                if seen is request:
                    del history[i]
                    break

    async def _update(self, request: rendering.Request) -> None:
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key not in self._objects or self._objects[key].deleted:
                return  # kmock answers 404
            old = copy.deepcopy(self._objects[key].raw)
            self._check_precondition(old, request.data if isinstance(request.data, dict) else {})
            try:
                # Deep: kmock's merge shares unchanged sub-dicts with `old`.
                new = copy.deepcopy(dict(dicts.patch_dict(old, request.data)))
            except (jsonpatch.JsonPatchException, ValueError) as exc:
                # Includes a failed "test" of the resourceVersion: the API server answers 422,
                # and kopf retries its finalizer patch on the next cycle.
                raise KubernetesError(status=422, reason="Invalid", message=str(exc)) from exc
            meta = new.setdefault("metadata", {})
            meta["resourceVersion"] = str(next(self._versions))
            if old.get("spec") != new.get("spec"):
                meta["generation"] = int(meta.get("generation", 1)) + 1
            # Replace the request's patch with the stamped result: kmock's merge of it is a no-op
            # for unchanged keys and sets the new metadata, and its broadcast sees the final body.
            object.__setattr__(request, "data", _full_replacement(old, new))

    async def _serve_server_version(self, request: rendering.Request) -> rendering.Payload:
        payload = await super()._serve_server_version(request)
        assert isinstance(payload, dict)
        payload.update(major="1", minor="34", gitVersion=KUBERNETES_VERSION)
        return payload

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        payload = await super()._serve_list(request)
        assert request.resource is not None and isinstance(payload, dict)
        info = self.resources[request.resource]
        group, version = request.resource.group, request.resource.version
        payload.update(
            apiVersion=f"{group}/{version}" if group else version, kind=f"{info.kind}List"
        )
        payload["metadata"]["resourceVersion"] = str(next(self._versions))
        return payload

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        payload = await super()._serve_version(request)
        assert request.resource is not None and isinstance(payload, dict)
        if request.resource.group == "":
            payload["groupVersion"] = request.resource.version
        for entry in payload["resources"]:
            if "/" in entry["name"]:  # a subresource has no short names or categories
                entry.update(shortNames=[], categories=[])
        return payload


def _cell(item: dict[str, Any], path: str, type_: str) -> Any:
    """A printer column's value: its JSONPath on the object; a date becomes an age."""
    found = [m.value for m in jsonpath_ng.ext.parse(f"${path}").find(item)]
    if not found:
        return None
    return _age(found[0]) if type_ == "date" else found[0]


def _age(stamp: str | None) -> str | None:
    """How long ago, the way the API server prints a date column (``45s``, ``3m``, ``2d``)."""
    if not stamp:
        return None
    then = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    seconds = int((datetime.datetime.now(tz=datetime.UTC) - then).total_seconds())
    if seconds < -1:
        return "<invalid>"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _full_replacement(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A merge patch that turns ``old`` into ``new``: changed keys set, removed keys nulled."""
    patch: dict[str, Any] = {}
    for key in old.keys() | new.keys():
        if key not in new:
            patch[key] = None
        elif isinstance(old.get(key), dict) and isinstance(new[key], dict):
            patch[key] = _full_replacement(old[key], new[key])
        elif old.get(key) != new[key] or key not in old:
            patch[key] = new[key]
    return patch


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_kubeconfig(path: Path, server: str, namespace: str = "default") -> Path:
    """A kubeconfig for kubectl, kopf and the Python client that points at ``server``."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "flywheel-dev",
        "clusters": [{"name": "flywheel-dev", "cluster": {"server": server}}],
        "users": [{"name": "flywheel-dev", "user": {"token": "flywheel-dev"}}],
        "contexts": [
            {
                "name": "flywheel-dev",
                "context": {
                    "cluster": "flywheel-dev",
                    "user": "flywheel-dev",
                    "namespace": namespace,
                },
            }
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


# How long a stopping emulator waits for open requests, watches among them, before it cuts them.
# A real API server's restart cuts them too, and clients watch again; aiohttp's own 60 s would
# hold every test that stops an emulator under an open watch.
SHUTDOWN_GRACE_SECONDS = 0.5


class _PromptlyStoppedServer(aiohttp.test_utils.RawTestServer):
    """kmock's aiohttp test server, with a short grace for open requests on shutdown."""

    async def _make_runner(self, debug: bool = True, **kwargs: Any) -> aiohttp.web.ServerRunner:
        server = aiohttp.web.Server(self._handler, loop=self._loop, debug=debug, **kwargs)
        return aiohttp.web.ServerRunner(
            server, debug=debug, shutdown_timeout=SHUTDOWN_GRACE_SECONDS, **kwargs
        )


class EmulatorThread:
    """The emulator served on 127.0.0.1 from its own thread and event loop.

    Synchronous callers (kubectl, the Kubernetes client, tests, the benchmark) talk to it over
    HTTP like to a cluster. Seeds a namespace, and kopf's peering object (with its resource) only
    when ``peering`` names one: the operator elects its leader on a built-in Lease instead. ``crd_files`` replaces the project's CRDs: KFP's alone, for one, is
    what a fresh cluster with KFP serves.
    """

    def __init__(
        self,
        namespace: str = "default",
        peering: str | None = None,
        crd_files: list[Path] | None = None,
    ) -> None:
        self.namespace = namespace
        self.peering = peering
        self.crd_files = crd_files
        self.emulator: ClusterEmulator | None = None
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="k8s-emulator", daemon=True)

    def __enter__(self) -> EmulatorThread:
        self._thread.start()
        if not self._ready.wait(timeout=30) or not self.url:
            raise RuntimeError("the Kubernetes emulator did not start")
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            files = {} if self.crd_files is None else {"crd_files": self.crd_files}
            extra = KOPF_PEERING if self.peering else {}
            async with (
                ClusterEmulator(extra_resources=extra, **files) as emulator,
                kmock.Server(emulator, server_cls=_PromptlyStoppedServer) as server,
            ):
                emulator.add("v1/namespaces", None, {"metadata": {"name": self.namespace}})
                if self.peering:
                    emulator.add(
                        "kopf.dev/v1/kopfpeerings",
                        self.namespace,
                        {
                            "apiVersion": "kopf.dev/v1",
                            "kind": "KopfPeering",
                            "metadata": {"name": self.peering},
                        },
                    )
                self.emulator = emulator
                self.url = str(server.url).rstrip("/")
                self._ready.set()
                await self._stop.wait()
        finally:
            self._ready.set()
