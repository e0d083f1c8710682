"""Least privilege in every mode: the rendered roles grant exactly what the code calls, where.

The calls are read from the code: the Kubernetes client calls in ``operators/`` and the
``kfp.Client`` calls of the operator (``operators/``) and of the upload Job and ``helm test``
(``pipelines/register.py``). What kopf and leader election call on the operator's behalf, which no
line of ours spells, is listed below with its reason. Multi-user KFP authorizes each API call with
a SubjectAccessReview in the profile namespace (kubeflow/pipelines backend/src/apiserver/server:
``canAccessPipeline``, ``canAccessRun``, ``canAccessExperiment``; the resources and verbs are in
``apiserver/common/const.go``); pipeline versions are checked as ``pipelines``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from deploy_checks import MANIFESTS, NAMESPACE, ROOT, helm_template, helm_template_error, kustomize

Grant = tuple[str, str, str, str]  # (namespace or "*", apiGroup, resource, verb)
PROFILE = "kubeflow-user-example-com"
KFP_GROUP = "pipelines.kubeflow.org"
POLICIES = "retrainpolicies"
DEPLOYMENTS = "modeldeployments"

# Each kfp.Client method the code calls, and the (resource, verb) KFP checks for it.
KFP_RBAC = {
    "get_pipeline_id": ("pipelines", "list"),  # ListPipelines with a name filter
    "list_pipelines": ("pipelines", "list"),
    "list_pipeline_versions": ("pipelines", "list"),
    "upload_pipeline": ("pipelines", "create"),
    "upload_pipeline_version": ("pipelines", "create"),
    "delete_pipeline_version": ("pipelines", "delete"),
    "list_experiments": ("experiments", "list"),
    "create_experiment": ("experiments", "create"),
    "list_runs": ("runs", "list"),
    "run_pipeline": ("runs", "create"),
    "get_run": ("runs", "get"),
    "terminate_run": ("runs", "terminate"),
}
# Kubernetes Python client method prefixes and the RBAC verb each is.
KUBE_VERBS = {
    "get": "get",
    "read": "get",
    "list": "list",
    "create": "create",
    "replace": "update",
    "patch": "patch",
    "delete": "delete",
}
KUBE_RESOURCES = {
    "custom_object": ("flywheel.dev", POLICIES),
    "custom_object_status": ("flywheel.dev", f"{POLICIES}/status"),
    "lease": ("coordination.k8s.io", "leases"),
}
# Calls made for the operator by kopf and leader election, by scope: "served" is every namespace
# the operator serves, "own" its own namespace, "cluster" cluster-wide only.
IMPLICIT = {
    # kopf lists and watches the policies, and patches them (finalizer, its progress annotations).
    ("served", "flywheel.dev", POLICIES, "list"),
    ("served", "flywheel.dev", POLICIES, "watch"),
    ("served", "flywheel.dev", POLICIES, "patch"),
    # kopf writes handler results into status through the status subresource.
    ("served", "flywheel.dev", f"{POLICIES}/status", "patch"),
    # The same for ModelDeployments, served by the same kopf operator.
    ("served", "flywheel.dev", DEPLOYMENTS, "list"),
    ("served", "flywheel.dev", DEPLOYMENTS, "watch"),
    ("served", "flywheel.dev", DEPLOYMENTS, "patch"),
    ("served", "flywheel.dev", f"{DEPLOYMENTS}/status", "patch"),
    # kopf.event posts an Event per state change (core or events.k8s.io, by cluster version).
    ("served", "", "events", "create"),
    ("served", "events.k8s.io", "events", "create"),
    # A cluster-wide kopf discovers the CRD and the namespaces to serve.
    ("cluster", "apiextensions.k8s.io", "customresourcedefinitions", "get"),
    ("cluster", "apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("cluster", "apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("cluster", "", "namespaces", "list"),
    ("cluster", "", "namespaces", "watch"),
    # Leader election, client-go's pattern: create the Lease once, then read and renew (update).
    ("own", "coordination.k8s.io", "leases", "get"),
    ("own", "coordination.k8s.io", "leases", "create"),
    ("own", "coordination.k8s.io", "leases", "update"),
}
# Our own stand-ins and tools, which no deployed account runs.
NOT_DEPLOYED = {"emulator.py", "kfp_standin.py", "openapi.py"}


def _sources(folder: str, kfp_only: bool = False) -> str:
    """The deployed code of a folder; with ``kfp_only``, its modules that use the KFP client."""
    files = sorted((ROOT / folder).glob("*.py"))
    texts = [p.read_text() for p in files if p.name not in NOT_DEPLOYED]
    return "\n".join(t for t in texts if not kfp_only or re.search(r"^import kfp\b", t, re.M))


def kfp_calls(text: str) -> set[tuple[str, str]]:
    """(resource, verb) of every kfp.Client call in the code; an unknown method fails the test."""
    methods = set(re.findall(r"(?<![\w.])(?:self\.)?client\.(\w+)\(", text))
    unknown = methods - set(KFP_RBAC)
    assert not unknown, f"add the KFP RBAC check of {sorted(unknown)} to KFP_RBAC"
    return {KFP_RBAC[method] for method in methods}


def _custom_resource(text: str) -> tuple[str, str]:
    """The (group, plural) a module's custom-object calls name: its own ``GROUP, VERSION, PLURAL``
    constants, else the policies' (imported from operators/policy.py)."""
    found = re.search(
        r'^GROUP, VERSION, PLURAL = "([^"]+)", "[^"]+", "([^"]+)"', text, re.MULTILINE
    )
    return (found[1], found[2]) if found else ("flywheel.dev", POLICIES)


def kube_calls(texts: list[str]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every Kubernetes client call in these modules."""
    pattern = r"\.(get|read|list|create|replace|patch|delete)_(?:namespaced_|cluster_)?" + (
        r"(custom_object_status|custom_object|lease)\b"
    )
    calls = set()
    for text in texts:
        group, plural = _custom_resource(text)
        # operators/kube.py's store serves ModelDeployments too (``plural=`` in
        # operators/deployment_handlers.py).
        plurals = [plural, DEPLOYMENTS] if "plural: str = PLURAL" in text else [plural]
        for verb, kind in re.findall(pattern, text):
            for each in plurals:
                resources = {
                    "custom_object": (group, each),
                    "custom_object_status": (group, f"{each}/status"),
                    "lease": ("coordination.k8s.io", "leases"),
                }
                calls.add((*resources[kind], KUBE_VERBS[verb]))
        resources = {
            "custom_object": (group, plural),
            "custom_object_status": (group, f"{plural}/status"),
            "lease": ("coordination.k8s.io", "leases"),
        }
        # kubernetes.watch streams a list function: a watch of that resource.
        for kind in re.findall(
            r"\.stream\(\s*self\.api\.list_(?:namespaced_|cluster_)?(\w+),", text
        ):
            calls.add((*resources[kind], "watch"))
    return calls


def _operator_modules() -> list[str]:
    files = sorted((ROOT / "operators").glob("*.py"))
    return [p.read_text() for p in files if p.name not in NOT_DEPLOYED]


def test_the_scan_finds_the_calls_the_code_makes() -> None:
    operator = kfp_calls(_sources("operators", kfp_only=True))
    assert {("runs", "create"), ("runs", "terminate"), ("experiments", "create")} <= operator
    assert ("pipelines", "create") in kfp_calls((ROOT / "pipelines" / "register.py").read_text())
    calls = kube_calls(_operator_modules())
    assert ("flywheel.dev", f"{POLICIES}/status", "patch") in calls
    assert ("coordination.k8s.io", "leases", "update") in calls
    assert ("flywheel.dev", f"{DEPLOYMENTS}/status", "patch") in calls
    handlers = (ROOT / "operators" / "deployment_handlers.py").read_text()
    assert "PolicyStore(memo.services.store.api, plural=PLURAL)" in handlers


def expected(watched: list[str], multi_user: bool, release_namespace: str) -> dict[str, set[Grant]]:
    """Grants each account needs: the operator's and the KFP client's."""
    served = watched or ["*"]
    scopes = {
        "served": served,
        "own": [release_namespace],
        "cluster": [] if watched else ["*"],
        "kfp": [PROFILE if multi_user else "kubeflow"],
    }
    # The Lease is in the operator's own namespace, KFP's PipelineVersions in KFP's namespace.
    where = {"leases": "own", "pipelineversions": "kfp"}
    operator_calls = {
        (where.get(resource, "served"), group, resource, verb)
        for group, resource, verb in kube_calls(_operator_modules())
    }
    operator: set[Grant] = {
        (namespace, group, resource, verb)
        for scope, group, resource, verb in IMPLICIT | operator_calls
        for namespace in scopes[scope]
    }
    client: set[Grant] = set()
    if multi_user:
        operator |= {
            (PROFILE, KFP_GROUP, resource, verb)
            for resource, verb in kfp_calls(_sources("operators", kfp_only=True))
        }
        register = (ROOT / "pipelines" / "register.py").read_text()
        client |= {(PROFILE, KFP_GROUP, resource, verb) for resource, verb in kfp_calls(register)}
    return {"operator": operator, "kfp-client": client}


def granted(docs: list[dict[str, Any]]) -> dict[str, set[Grant]]:
    """Grants of each of the release's accounts, from its bindings: (namespace or "*", ...)."""
    roles = {
        (doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]): doc
        for doc in docs
        if doc["kind"] in ("Role", "ClusterRole")
    }
    result: dict[str, set[Grant]] = {"operator": set(), "kfp-client": set()}
    for binding in docs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        namespace = binding["metadata"].get("namespace")
        ref = binding["roleRef"]
        role = roles[(ref["kind"], namespace if ref["kind"] == "Role" else None, ref["name"])]
        scope = namespace or "*"
        for subject in binding["subjects"]:
            account = "kfp-client" if subject["name"].endswith("-kfp-client") else "operator"
            for rule in role["rules"]:
                result[account] |= {
                    (scope, group, resource, verb)
                    for group in rule["apiGroups"]
                    for resource in rule["resources"]
                    for verb in rule["verbs"]
                }
    return result


MODES = {
    "single-user": ([], False),
    "single-user-namespaced": (["flywheel", "team-a"], False),
    "multi-user": ([], True),
    "multi-user-namespaced": (["team-a"], True),
}


def _values(watched: list[str], multi_user: bool) -> list[str]:
    args = []
    if watched:
        args += ["--set", "operator.watchNamespaces={" + ",".join(watched) + "}"]
    if multi_user:
        args += ["--set", "kfp.multiUser=true", "--set", f"kfp.namespace={PROFILE}"]
    return args


@pytest.mark.parametrize("watched,multi_user", MODES.values(), ids=MODES.keys())
def test_the_chart_grants_exactly_what_the_code_calls_in_every_mode(
    watched: list[str], multi_user: bool
) -> None:
    docs = helm_template(*_values(watched, multi_user), "--set", "pipelines.mode=api")
    assert granted(docs) == expected(watched, multi_user, NAMESPACE)


@pytest.mark.parametrize("overlay,namespace", [("dev", "flywheel-dev"), ("prod", "flywheel")])
def test_the_overlays_grant_exactly_what_the_code_calls(overlay: str, namespace: str) -> None:
    docs = kustomize(MANIFESTS / "overlays" / overlay)
    watched = [namespace] if overlay == "dev" else []
    assert granted(docs) == expected(watched, False, namespace)


def test_the_lease_can_be_read_and_renewed_only_by_its_name() -> None:
    docs = helm_template()
    (deployment,) = [doc for doc in docs if doc["kind"] == "Deployment"]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    lease = env["FLYWHEEL_LEASE_NAME"]["value"]
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    (role,) = [
        doc
        for doc in docs
        if doc["kind"] == "Role" and doc["metadata"]["name"].endswith("-leader-election")
    ]
    assert role["metadata"]["namespace"] == NAMESPACE
    for rule in role["rules"]:
        if set(rule["verbs"]) & {"get", "update"}:
            assert rule["resourceNames"] == [lease], rule


def test_multi_user_mode_binds_no_kubeflow_role_and_nothing_outside_the_profile() -> None:
    docs = helm_template(*_values([], True))
    for doc in docs:
        if doc["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            assert doc["roleRef"]["name"] not in {
                "kubeflow-edit",
                "kubeflow-admin",
                "admin",
                "edit",
            }
            assert doc["roleRef"]["kind"] == "Role" or doc["kind"] == "ClusterRoleBinding"
    kfp_grants = {g for grants in granted(docs).values() for g in grants if g[1] == KFP_GROUP}
    assert kfp_grants and {g[0] for g in kfp_grants} == {PROFILE}
    # Nothing of the profile beyond KFP's authorization resources and a read-only watch of its
    # PipelineVersions: no secrets, pods or exec.
    assert {g[2] for g in kfp_grants} <= {"pipelines", "experiments", "runs", "pipelineversions"}
    assert {g[3] for g in kfp_grants if g[2] == "pipelineversions"} == {"list", "watch"}


def test_multi_user_mode_refuses_kfps_own_namespace_with_one_clear_message() -> None:
    error = helm_template_error("--set", "kfp.multiUser=true")
    assert "kfp.multiUser=true needs kfp.namespace set to the Kubeflow profile namespace" in error


def test_source_files_exist_where_the_scan_reads_them() -> None:
    assert (ROOT / "pipelines" / "register.py").is_file()
    assert any(Path(ROOT / "operators").glob("kfp_runs.py"))
