"""A fresh cluster with KFP, as the dev emulator serves it, and what clients map before applying.

Helm's ``install`` (pkg/action/install.go) builds the whole release manifest with the cluster's
REST mapper before it creates anything (``KubeClient.Build``): one object of a kind discovery does
not list stops the install with "no matches for kind", even when the release itself brings the
CRD. Only a chart's ``crds/`` folder is created (and discovery refreshed) before that, and hooks
are built when they run, after the release's objects exist. ``kubectl apply`` maps every object
the same way before it applies any, and fails each one it cannot map.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from deploy_checks import KFP_CRDS, documents

from flywheel.operators.emulator import EmulatorThread

Kind = tuple[str, str]  # (apiVersion, kind)
HOOK = "helm.sh/hook"


def fresh_cluster() -> EmulatorThread:
    """An API server that serves the built-in kinds and KFP's CRDs, nothing of Flywheel's."""
    return EmulatorThread("default", peering=None, crd_files=sorted(KFP_CRDS.glob("*.yaml")))


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def discovered_kinds(url: str) -> set[Kind]:
    """Every (apiVersion, kind) the server's discovery lists, as a REST mapper reads it."""
    versions = ["v1"]
    for group in _get(f"{url}/apis")["groups"]:
        versions += [version["groupVersion"] for version in group["versions"]]
    kinds: set[Kind] = set()
    for group_version in versions:
        prefix = "/api" if group_version == "v1" else "/apis"
        listing = _get(f"{url}{prefix}/{group_version}")
        kinds |= {(group_version, r["kind"]) for r in listing["resources"] if "/" not in r["name"]}
    return kinds


def crd_kinds(docs: Iterable[dict[str, Any]]) -> set[Kind]:
    """The kinds the CRDs among these objects define, once they exist."""
    return {
        (f"{doc['spec']['group']}/{version['name']}", doc["spec"]["names"]["kind"])
        for doc in docs
        if doc["kind"] == "CustomResourceDefinition"
        for version in doc["spec"]["versions"]
    }


def unmapped(docs: Iterable[dict[str, Any]], known: set[Kind]) -> list[str]:
    """The objects a client cannot map with this discovery: "no matches for kind"."""
    return [
        f"{doc['kind']}/{doc['metadata']['name']} ({doc['apiVersion']})"
        for doc in docs
        if (doc["apiVersion"], doc["kind"]) not in known
    ]


def helm_install_unmapped(
    docs: list[dict[str, Any]], known: set[Kind], chart_crds: Iterable[Path] = ()
) -> list[str]:
    """What ``helm install`` cannot map: the release's objects are built against discovery plus
    the ``crds/`` folder's kinds; each hook later, once the release's own CRDs exist too."""
    folder = {kind for path in chart_crds for kind in crd_kinds(documents(path.read_text()))}
    release = [doc for doc in docs if HOOK not in (doc["metadata"].get("annotations") or {})]
    hooks = [doc for doc in docs if doc not in release]
    return unmapped(release, known | folder) + unmapped(hooks, known | folder | crd_kinds(release))
