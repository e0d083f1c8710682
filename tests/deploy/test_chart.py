"""The Helm chart: lint, valid manifests for every documented combination, clear errors on bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from deploy_checks import (
    CHART,
    COMBINATIONS,
    MANIFESTS,
    MODEL_DEPLOYMENT,
    POLICY,
    ROLE_ARN,
    binary,
    documents,
    helm_template,
    helm_template_error,
    of_kind,
    pod_specs,
    run,
    validate_all,
)

from flywheel.pipelines import kubernetes_manifests
from flywheel.pipelines.catalog import PIPELINES


def test_chart_passes_helm_lint_strict() -> None:
    result = run(binary("helm"), "lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("args", COMBINATIONS.values(), ids=COMBINATIONS.keys())
def test_every_documented_combination_renders_valid_manifests(args: list[str]) -> None:
    validate_all(helm_template(*args))


@pytest.mark.parametrize("args", COMBINATIONS.values(), ids=COMBINATIONS.keys())
def test_every_pod_runs_non_root_read_only_without_capabilities(args: list[str]) -> None:
    for name, spec in pod_specs(helm_template(*args)):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert "memory" in container["resources"]["limits"], name


def test_chart_crds_are_the_files_in_manifests_crds() -> None:
    ours = {path.name: path.read_bytes() for path in (MANIFESTS / "crds").glob("*.yaml")}
    chart = {path.name: path.read_bytes() for path in (CHART / "files" / "crds").glob("*.yaml")}
    assert chart == ours


def _crds(docs: list[dict]) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in of_kind(docs, "CustomResourceDefinition")}


def test_crds_are_release_templates_kept_on_uninstall_not_install_once_files() -> None:
    # Helm installs a chart's crds/ folder once and never upgrades it.
    assert not (CHART / "crds").exists()
    crds = _crds(helm_template())
    assert set(crds) == {"retrainpolicies.flywheel.dev", "modeldeployments.flywheel.dev"}
    for crd in crds.values():
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert not _crds(helm_template("--set", "crds.install=false"))
    kept = _crds(helm_template("--set", "crds.keep=false"))["retrainpolicies.flywheel.dev"]
    assert "helm.sh/resource-policy" not in kept["metadata"]["annotations"]


def test_the_release_renders_no_kopf_peering_object_and_no_crd_of_one() -> None:
    """Leader election uses a built-in Lease: nothing the release applies needs a CRD first."""
    for args in ([], ["--set", "operator.watchNamespaces={a,b}"]):
        docs = helm_template(*args)
        assert not [doc for doc in docs if doc["apiVersion"].startswith("kopf.dev/")]
        assert "kopfpeerings.kopf.dev" not in _crds(docs)


def test_a_changed_crd_reaches_the_release_manifest_that_helm_upgrade_applies(
    tmp_path: Path,
) -> None:
    """Old chart, new chart: the new schema is in what `helm upgrade` diffs and applies."""
    new_chart = tmp_path / "flywheel"
    shutil.copytree(CHART, new_chart)
    crd_file = new_chart / "files" / "crds" / "retrainpolicies.flywheel.dev.yaml"
    crd = yaml.safe_load(crd_file.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["owner"] = {"type": "string", "maxLength": 63}
    crd_file.write_text(yaml.safe_dump(crd))
    old = _crds(helm_template())["retrainpolicies.flywheel.dev"]
    new = _crds(helm_template(chart=new_chart))["retrainpolicies.flywheel.dev"]
    new_spec = new["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    old_spec = old["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert "owner" in new_spec["properties"] and "owner" not in old_spec["properties"]
    assert new["metadata"] == old["metadata"]  # the same object, upgraded in place


def test_kubernetes_mode_ships_every_compiled_pipeline_unchanged() -> None:
    rendered = {doc["metadata"]["name"]: doc for doc in helm_template()}
    for pipeline in PIPELINES.values():
        pipeline_doc, version_doc = kubernetes_manifests.current_documents(pipeline)
        assert rendered[pipeline_doc["metadata"]["name"]]["spec"] == pipeline_doc["spec"]
        assert rendered[version_doc["metadata"]["name"]]["spec"] == version_doc["spec"]


def _chart_with_history(tmp_path: Path, versions: int) -> Path:
    """A copy of the chart whose one pipeline has ``versions`` versions, newest first."""
    chart = tmp_path / "flywheel"
    shutil.copytree(CHART, chart)
    files = chart / "files" / "pipelines"
    shutil.rmtree(files)
    files.mkdir()
    pipeline_doc, newest = kubernetes_manifests.current_documents(PIPELINES["training"])
    older = []
    for index in range(versions - 1):
        doc = yaml.safe_load(yaml.safe_dump(newest))
        doc["metadata"]["name"] = doc["spec"]["versionName"] = f"flywheel-training-old{index}"
        older.append(doc)
    text = "".join(f"---\n{yaml.safe_dump(doc)}" for doc in [pipeline_doc, newest, *older])
    (files / "flywheel-training.yaml").write_text(text)
    return chart


@pytest.mark.parametrize("keep", [1, 3])
def test_kubernetes_mode_keeps_the_configured_number_of_newest_versions(
    tmp_path: Path, keep: int
) -> None:
    chart = _chart_with_history(tmp_path, versions=4)
    versions = of_kind(
        helm_template("--set", f"pipelines.keepVersions={keep}", chart=chart), "PipelineVersion"
    )
    expected = ["flywheel-training-old0", "flywheel-training-old1"][: keep - 1]
    assert [doc["metadata"]["name"] for doc in versions][1:] == expected
    assert len(versions) == keep


def test_api_mode_uploads_through_a_hook_job_instead_of_resources() -> None:
    docs = helm_template("--set", "pipelines.mode=api")
    assert not of_kind(docs, "PipelineVersion") and not of_kind(docs, "Pipeline")
    (job,) = of_kind(docs, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:3] == ["python", "-m", "flywheel.pipelines.register"]
    (configmap,) = [
        doc for doc in of_kind(docs, "ConfigMap") if doc["metadata"]["name"].endswith("-pipelines")
    ]
    shipped = {f"{kubernetes_manifests.resource_name(p)}.yaml" for p in PIPELINES.values()}
    assert set(configmap["data"]) == shipped
    for text in configmap["data"].values():
        assert [doc["kind"] for doc in documents(text)] == ["Pipeline", "PipelineVersion"]


def test_irsa_puts_the_role_arn_on_the_operator_service_account() -> None:
    docs = helm_template(
        "--set",
        "irsa.enabled=true",
        "--set",
        f"irsa.roleArn={ROLE_ARN}",
        "--set",
        "pipelines.mode=api",
    )
    accounts = {doc["metadata"]["name"]: doc for doc in of_kind(docs, "ServiceAccount")}
    (deployment,) = of_kind(docs, "Deployment")
    operator = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert accounts[operator]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == ROLE_ARN
    # The upload Job and the test pods call KFP only: their account carries no IAM role.
    for name, spec in pod_specs(docs):
        if name != deployment["metadata"]["name"] and "serviceAccountName" in spec:
            account = accounts[spec["serviceAccountName"]]
            assert spec["serviceAccountName"] != operator, name
            assert "annotations" not in account["metadata"], name


def test_irsa_without_a_chart_made_account_is_refused_not_dropped() -> None:
    error = helm_template_error(
        "--set",
        "irsa.enabled=true",
        "--set",
        f"irsa.roleArn={ROLE_ARN}",
        "--set",
        "serviceAccount.create=false",
        "--set",
        "serviceAccount.name=existing",
    )
    assert "irsa.enabled needs serviceAccount.create=true" in error


def test_operator_rbac_cannot_write_anything_but_policies_events_and_its_lease() -> None:
    roles = of_kind(helm_template(), "ClusterRole") + of_kind(
        helm_template("--set", "operator.watchNamespaces={a}"), "Role"
    )
    writes = {"create", "update", "patch", "delete", "deletecollection", "*"}
    for role in roles:
        for rule in role["rules"]:
            if writes & set(rule["verbs"]):
                assert set(rule["resources"]) <= {
                    "retrainpolicies",
                    "retrainpolicies/status",
                    "modeldeployments",
                    "modeldeployments/status",
                    "events",
                    "leases",
                }, rule
                assert "delete" not in rule["verbs"] and "*" not in rule["verbs"], rule
            # Single-user KFP is reached through its API; of its resources the operator only
            # watches PipelineVersions, to re-resolve a policy's version when git changes them.
            if "pipelines.kubeflow.org" in rule["apiGroups"]:
                assert rule["resources"] == ["pipelineversions"], rule
                assert set(rule["verbs"]) <= {"list", "watch"}, rule


def test_service_monitor_scrapes_the_metrics_service() -> None:
    docs = helm_template("--set", "metrics.serviceMonitor.enabled=true")
    (monitor,) = of_kind(docs, "ServiceMonitor")
    (service,) = of_kind(docs, "Service")
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_policies_from_values_become_retrain_policies() -> None:
    docs = helm_template(*COMBINATIONS["policies"])
    (policy,) = of_kind(docs, "RetrainPolicy")
    assert policy["metadata"]["name"] == "nightly"
    assert policy["spec"] == POLICY["spec"]
    (deployment,) = of_kind(docs, "ModelDeployment")
    assert deployment["metadata"]["name"] == "churn-model"
    assert deployment["spec"] == MODEL_DEPLOYMENT["spec"]
    assert deployment["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "3"


BAD_VALUES = {
    "wrong pipelines mode": (["--set", "pipelines.mode=database"], r"pipelines[./]mode"),
    "irsa without role arn": (["--set", "irsa.enabled=true"], r"irsa\.roleArn is required"),
    "malformed role arn": (
        ["--set", "irsa.enabled=true", "--set", "irsa.roleArn=my-role"],
        r"roleArn",
    ),
    "policy without triggers": (
        ["--set-json", 'policies=[{"name":"p","spec":{"pipeline":{"name":"x"}}}]'],
        r"triggers",
    ),
    "policy with a bad name": (
        [
            "--set-json",
            'policies=[{"name":"Bad_Name","spec":{"pipeline":{"name":"x"},'
            '"triggers":[{"name":"t","manual":{}}]}}]',
        ],
        r"name",
    ),
    "two policies with one name": (
        ["--set-json", f"policies=[{json.dumps(POLICY)},{json.dumps(POLICY)}]"],
        r'policies\[1\]\.name "nightly" is already used by policies\[0\]',
    ),
    "a model deployment with 11 rollback alarms": (
        [
            "--set-json",
            "modelDeployments="
            + json.dumps(
                [
                    {
                        **MODEL_DEPLOYMENT,
                        "spec": {
                            **MODEL_DEPLOYMENT["spec"],
                            "stages": [
                                {
                                    **MODEL_DEPLOYMENT["spec"]["stages"][0],
                                    "endpoint": {
                                        "name": "e",
                                        "rollbackAlarms": [f"a{i}" for i in range(11)],
                                    },
                                }
                            ],
                        },
                    }
                ]
            ),
        ],
        r"rollbackAlarms",
    ),
    "typo in a key": (["--set", "operator.replica=2"], r"replica"),
    "keeping more versions than compile writes": (
        ["--set", "pipelines.keepVersions=9"],
        r"keepVersions",
    ),
    "cpu request above its limit": (
        ["--set", "operator.resources.requests.cpu=2", "--set", "operator.resources.limits.cpu=1"],
        r"operator\.resources\.requests\.cpu \(2\) is above operator\.resources\.limits\.cpu",
    ),
    "memory request above its limit": (
        [
            "--set",
            "operator.resources.requests.memory=1Gi",
            "--set",
            "operator.resources.limits.memory=512Mi",
        ],
        r"operator\.resources\.requests\.memory \(1Gi\) is above",
    ),
    "multi-user kfp in kfp's own namespace": (
        ["--set", "kfp.multiUser=true"],
        r"kfp\.multiUser=true needs kfp\.namespace",
    ),
}


@pytest.mark.parametrize("args,message", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_values_fail_with_a_message_naming_the_value(args: list[str], message: str) -> None:
    assert re.search(message, helm_template_error(*args))


def test_every_value_has_a_one_line_comment() -> None:
    """A key preceded by a ``# --`` comment documents its subtree; any other key must be a group."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    documented_indent: int | None = None
    for index, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z][\w-]*):", line)
        if not match:
            continue
        indent = len(match[1])
        if documented_indent is not None and indent > documented_indent:
            continue  # inside a documented subtree
        documented_indent = None
        if lines[index - 1].strip().startswith("# --"):
            documented_indent = indent
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if not following.startswith(" " * (indent + 2)) or line.rstrip().endswith(("{}", "[]")):
            undocumented.append(line.strip())
    assert not undocumented


def test_notes_tell_the_user_how_to_start_a_run_and_watch_a_policy() -> None:
    result = run(
        binary("helm"),
        "install",
        "flywheel",
        str(CHART),
        "-n",
        "flywheel",
        "--dry-run=client",
        "--set-json",
        f"policies=[{json.dumps(POLICY)}]",
        "--set-json",
        f"modelDeployments=[{json.dumps(MODEL_DEPLOYMENT)}]",
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "flywheel.dev/run-nonce" in notes
    assert "get modeldeployment churn-model -o yaml" in notes
    assert "flywheel.dev/approve.<stage>=<version>" in notes
    assert "get retrainpolicies -w" in notes
    assert "describe retrainpolicy nightly" in notes
