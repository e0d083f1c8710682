"""Argo CD: the Application points at the chart, sync waves order the resources, and the Lua
health check judges RetrainPolicies the way the operator's conditions mean."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import lupa
import pytest
import yaml
from deploy_checks import CHART, MANIFESTS, ROOT, helm_template, of_kind

ARGOCD = MANIFESTS / "argocd"


def _health_check(kind: str) -> str:
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    return patch["data"][f"resource.customizations.health.{kind}"]


def health(obj: dict[str, Any], kind: str = "flywheel.dev_RetrainPolicy") -> tuple[str, str]:
    """Run the Lua health check the way Argo CD does: ``obj`` global, a table returned."""
    runtime = lupa.LuaRuntime()
    runtime.globals().obj = _lua_ready(runtime, obj)
    result = runtime.execute(_health_check(kind))
    return result["status"], result["message"]


def _lua_ready(runtime: lupa.LuaRuntime, value: Any) -> Any:
    """Nested Python values as Lua tables; lists become 1-based arrays, as Argo CD's are."""
    if isinstance(value, dict):
        return runtime.table_from({k: _lua_ready(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_lua_ready(runtime, v) for v in value])
    return value


def policy(
    *conditions: tuple[str, str], active: int = 0, generation: int = 1, observed: int = 1
) -> dict[str, Any]:
    return {
        "metadata": {"name": "nightly", "generation": generation},
        "status": {
            "observedGeneration": observed,
            "activeCount": active,
            "conditions": [
                {"type": kind, "status": status, "reason": f"{kind}Reason", "message": ""}
                for kind, status in conditions
            ],
        },
    }


def not_ready(reason: str, message: str = "") -> dict[str, Any]:
    obj = policy(("Ready", "False"), ("Running", "False"))
    obj["status"]["conditions"][0].update(reason=reason, message=message)
    return obj


# Every reason the operator gives Ready=False: the policy never fires until someone acts.
NOT_READY_REASONS = [
    "InvalidSpec",
    "PipelineNotFound",
    "KfpUnreachable",
    "SourceCredentialsMissing",
]


@pytest.mark.parametrize("reason", NOT_READY_REASONS)
def test_a_policy_that_cannot_work_is_degraded_with_its_reason(reason: str) -> None:
    assert health(not_ready(reason, "spec.pipeline: no KFP pipeline named 'x'")) == (
        "Degraded",
        f"{reason}: spec.pipeline: no KFP pipeline named 'x'",
    )
    assert health(not_ready(reason)) == ("Degraded", reason)


def test_degraded_wins_over_an_active_run() -> None:
    obj = not_ready("PipelineNotFound")
    obj["status"]["activeCount"] = 1
    assert health(obj)[0] == "Degraded"


def test_pipeline_not_looked_up_yet_is_progressing() -> None:
    obj = policy(("Ready", "Unknown"))
    obj["status"]["conditions"][0].update(reason="PipelineUnchecked", message="not yet")
    assert health(obj) == ("Progressing", "not yet")


def test_active_runs_are_described_by_the_running_condition_or_the_count() -> None:
    running = policy(("Ready", "True"), ("Running", "True"), active=1)
    running["status"]["conditions"][1].update(reason="RunsActive", message="nightly-abc123")
    assert health(running) == ("Progressing", "nightly-abc123")
    stale = policy(("Ready", "True"), ("Running", "False"), active=2)
    stale["status"]["conditions"][1].update(reason="NoRunsActive")
    assert health(stale) == ("Progressing", "2 run(s) active")


HEALTH = {
    "ready": (policy(("Ready", "True")), "Healthy"),
    "source error": (policy(("Ready", "True"), ("SourceError", "True")), "Degraded"),
    "paused": (policy(("Ready", "True"), ("Paused", "True")), "Degraded"),
    "run active": (policy(("Ready", "True"), ("Running", "True"), active=1), "Progressing"),
    "run counted": (policy(("Ready", "True"), active=2), "Progressing"),
    "suspended": (policy(("Ready", "True"), ("Suspended", "True")), "Suspended"),
    "not ready": (policy(("Ready", "False")), "Degraded"),
    "ready unknown": (policy(("Ready", "Unknown")), "Progressing"),
    "spec not observed yet": (policy(("Ready", "True"), generation=2, observed=1), "Progressing"),
    "no status yet": ({"metadata": {"name": "nightly", "generation": 1}}, "Progressing"),
    "cleared error": (policy(("Ready", "True"), ("SourceError", "False")), "Healthy"),
}


@pytest.mark.parametrize("obj,expected", HEALTH.values(), ids=HEALTH.keys())
def test_retrain_policy_health_follows_its_conditions(obj: dict[str, Any], expected: str) -> None:
    status, message = health(obj)
    assert status == expected
    assert message


def test_a_run_kfp_refuses_to_create_is_degraded_not_progressing() -> None:
    """KFP answered 400/403: retried every tick, it never lands until someone fixes the policy."""
    refused = policy(("Ready", "True"), ("RunCreated", "False"), ("Running", "False"), active=1)
    refused["status"]["conditions"][1].update(
        reason="KfpRefused", message="nightly-abc123: 400 unknown parameter trigger_reason"
    )
    assert health(refused) == (
        "Degraded",
        "KfpRefused: nightly-abc123: 400 unknown parameter trigger_reason",
    )


def test_a_launch_failure_reported_on_running_is_degraded_too() -> None:
    failed = policy(("Ready", "True"), ("Running", "False"), active=1)
    failed["status"]["conditions"][1].update(reason="LaunchFailed", message="nightly-abc: 403")
    assert health(failed) == ("Degraded", "LaunchFailed: nightly-abc: 403")


def test_kfp_unreachable_while_launching_stays_progressing() -> None:
    waiting = policy(("Ready", "True"), ("Running", "False"), active=1)
    waiting["status"]["conditions"][1].update(reason="KfpUnreachable", message="timed out")
    assert health(waiting)[0] == "Progressing"
    created = policy(("Ready", "True"), ("RunCreated", "True"), ("Running", "True"), active=1)
    assert health(created)[0] == "Progressing"


def test_applications_never_change_a_live_pipeline_versions_version_name() -> None:
    """KFP 2.14-2.16 to 2.17: live versions keep their spec; KFP 2.17 refuses a changed one."""
    for app in _applications():
        spec = app["spec"]
        assert {
            "group": "pipelines.kubeflow.org",
            "kind": "PipelineVersion",
            "jsonPointers": ["/spec/versionName"],
        } in spec["ignoreDifferences"]
        assert "RespectIgnoreDifferences=true" in spec["syncPolicy"]["syncOptions"]


def test_degraded_health_carries_the_operator_reason() -> None:
    assert health(policy(("SourceError", "True")))[1] == "SourceErrorReason"


def test_application_health_passes_through_the_child_application_status() -> None:
    app = {"status": {"health": {"status": "Degraded", "message": "pipeline sync failed"}}}
    assert health(app, "argoproj.io_Application") == ("Degraded", "pipeline sync failed")


def _applications() -> list[dict[str, Any]]:
    single = yaml.safe_load((ARGOCD / "application.yaml").read_text())
    appset = yaml.safe_load((ARGOCD / "applicationset.yaml").read_text())
    return [single, appset["spec"]["template"]]


def test_applications_point_at_the_chart_and_its_values_files() -> None:
    appset = yaml.safe_load((ARGOCD / "applicationset.yaml").read_text())
    environments = [
        element["env"] for element in appset["spec"]["generators"][0]["list"]["elements"]
    ]
    assert environments == ["dev", "staging", "prod"]
    for app in _applications():
        source = app["spec"]["source"]
        assert (ROOT / source["path"]).resolve() == CHART
        for env in environments:
            for values in source["helm"]["valueFiles"]:
                assert (CHART / values.replace("{{ .env }}", env)).resolve().is_file(), values


def _waves(docs: list[dict[str, Any]]) -> dict[str, int]:
    annotations = (doc["metadata"].get("annotations") or {} for doc in docs)
    return {
        doc["kind"]: int(notes.get("argocd.argoproj.io/sync-wave", 0))
        for doc, notes in zip(docs, annotations, strict=True)
    }


def test_sync_waves_apply_operator_then_pipelines_then_versions_then_policies() -> None:
    policies = (
        '[{"name":"p","spec":{"pipeline":{"name":"x"},"triggers":[{"name":"t","manual":{}}]}}]'
    )
    docs = helm_template("--set-json", f"policies={policies}")
    waves = _waves(docs)
    assert waves["CustomResourceDefinition"] <= waves["Deployment"] < waves["Pipeline"]
    assert waves["Pipeline"] < waves["PipelineVersion"] < waves["RetrainPolicy"]
    for doc in of_kind(docs, "PipelineVersion") + of_kind(docs, "RetrainPolicy"):
        # Until KFP's (or our) CRD exists, the dry run must not fail the whole sync.
        options = doc["metadata"]["annotations"]["argocd.argoproj.io/sync-options"]
        assert "SkipDryRunOnMissingResource=true" in options


# ModelDeployment: the Lua reads the statuses the operator's own decision writes.
def _deployment_status(
    staging: dict[str, Any], *, annotations: dict[str, str] | None = None
) -> dict:
    from flywheel.operators.deployment_spec import parse_deployment
    from flywheel.operators.rollout import decide_rollout

    sample = yaml.safe_load((MANIFESTS / "deployments" / "modeldeployment-sample.yaml").read_text())
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn-model/{}"
    stages = {"staging": staging}
    if staging.get("endpoint", {}).get("servedVersion") == 3:
        stages["prod"] = {
            "target": {"ok": True, "version": 3, "arn": arn.format(3)},
            "endpoint": {"servedVersion": 3},
        }
    decision = decide_rollout(
        parse_deployment(sample["spec"]),
        {"observations": {"stages": stages}},
        annotations=annotations or {},
        now=datetime(2026, 12, 6, tzinfo=UTC),
        generation=1,
        uid="u",
        name="churn-model",
    )
    return {"metadata": {"name": "churn-model", "generation": 1}, "status": decision.status}


def _target(version: int) -> dict[str, Any]:
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/churn-model/{version}"
    return {"ok": True, "version": version, "arn": arn}


def test_model_deployment_health_follows_the_rollout() -> None:
    kind = "flywheel.dev_ModelDeployment"
    deploying = _deployment_status({"target": _target(3), "endpoint": {"servedVersion": 2}})
    assert health(deploying, kind)[0] == "Progressing"
    deployed = _deployment_status({"target": _target(3), "endpoint": {"servedVersion": 3}})
    assert health(deployed, kind) == ("Healthy", "every stage serves its target version")
    missing = {"ok": False, "reason": "VersionNotFound", "message": "no version 9"}
    failed = _deployment_status({"target": missing})
    assert health(failed, kind) == ("Degraded", "Failed: staging: no version 9")
    assert health({"metadata": {"name": "x", "generation": 1}}, kind)[0] == "Progressing"


def test_a_rolled_back_model_deployment_is_degraded() -> None:
    obj = _deployment_status({"target": _target(3), "endpoint": {"servedVersion": 2}})
    staging = obj["status"]["stages"][0]
    staging["rollout"]["runId"] = "r"
    observations = {
        "stages": {
            "staging": {
                "target": _target(3),
                "endpoint": {"servedVersion": 2, "failureReason": "Alarm 5xx went off"},
                "runs": {staging["rollout"]["runKey"]: {"state": "FAILED"}},
            }
        }
    }
    from flywheel.operators.deployment_spec import parse_deployment
    from flywheel.operators.rollout import decide_rollout

    sample = yaml.safe_load((MANIFESTS / "deployments" / "modeldeployment-sample.yaml").read_text())
    after = decide_rollout(
        parse_deployment(sample["spec"]),
        {**obj["status"], "observations": observations},
        annotations={},
        now=datetime(2026, 12, 6, 0, 5, tzinfo=UTC),
        generation=1,
        uid="u",
        name="churn-model",
    )
    status, message = health(
        {"metadata": obj["metadata"], "status": after.status}, "flywheel.dev_ModelDeployment"
    )
    assert status == "Degraded"
    assert message.startswith("RolledBack: staging: version 3 was rolled back (Alarm 5xx went off)")
