"""ModelDeployments through the emulator, the KFP stand-in and SageMaker on moto.

The stand-in executes each flywheel-deployment run as KFP would run its one task: the
``deploy_endpoint`` component's code (``deploy_model_package``) against moto, every request
checked by the strict validator (tests/conftest.py), with UpdateEndpoint's blue/green and
auto-rollback rules from ``blue_green.py``. Approvals are SageMaker's (UpdateModelPackage), as
``flywheel approve`` records them on a sagemaker:// registry.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from blue_green import Updates
from moto.moto_api._internal.models import moto_api_backend
from operator_harness import (
    NAMESPACE,
    REGION,
    Cluster,
    OperatorThread,
    aws_client,
    replica_group,
    wait_for,
)

from flywheel.components.compute.sagemaker import AwsClients, SageMakerConfig
from flywheel.components.compute.sagemaker.endpoint import deploy_model_package
from flywheel.operators.deployment_spec import GROUP, PLURAL, VERSION
from flywheel.operators.dev_serving import put_quiet_alarm
from flywheel.operators.kfp_standin import KfpStandIn

MODEL = "churn-model"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/flywheel-sagemaker-execution"
ALARM = "churn-staging-5xx"


class Deployments:
    """ModelDeployments as kubectl sees them, and the registry as an approver does."""

    def __init__(self, cluster: Cluster, aws: str) -> None:
        self.api = cluster.api
        self.url = cluster.url
        self.sagemaker = aws_client(aws, "sagemaker")

    def apply(self, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelDeployment",
            "metadata": {"name": name},
            "spec": spec,
        }
        self.api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)

    def patch(self, name: str, patch: dict[str, Any]) -> None:
        self.api.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name, patch)

    def stage(self, name: str, stage: str) -> dict[str, Any]:
        obj = self.api.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)
        stages = (obj.get("status") or {}).get("stages") or []
        return next((s for s in stages if s["name"] == stage), {})

    def wait_stage(
        self, name: str, stage: str, state: str, served: int | None = None, reason: str = ""
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            found = self.stage(name, stage)
            ok = (
                found.get("state") == state
                and (served is None or found.get("servedVersion") == served)
                and (not reason or found.get("reason") == reason)
            )
            return found if ok else None

        return wait_for(
            reached, timeout=20, what=f"{stage} {state} {served}: {self.stage(name, stage)}"
        )

    def approve(self, version: int) -> None:
        arn = f"arn:aws:sagemaker:{REGION}:123456789012:model-package/{MODEL}/{version}"
        self.sagemaker.update_model_package(
            ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="looks good"
        )


def register(sagemaker: Any, versions: int) -> None:
    sagemaker.create_model_package_group(ModelPackageGroupName=MODEL)
    for i in range(versions):
        sagemaker.create_model_package(
            ModelPackageGroupName=MODEL,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [
                    {"Image": IMAGE, "ModelDataUrl": f"s3://flywheel-models/m{i}.tar.gz"}
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
        )


def executor(aws: str) -> Callable[[str, dict[str, Any]], str]:
    """The flywheel-deployment pipeline's one task, as KFP runs it: the component's code."""

    def run(_name: str, parameters: dict[str, Any]) -> str:
        config = SageMakerConfig.from_mapping(parameters["compute_config"])
        deploy_model_package(
            AwsClients.connect(config.region, config.endpoint_url),
            config,
            parameters["model_package_arn"],
            endpoint_name=parameters["endpoint_name"],
            instance_type=parameters["instance_type"],
            instance_count=int(parameters["instance_count"]),
            rollback_alarms=tuple(parameters["rollback_alarms"]),
            traffic_routing=parameters["traffic_routing"],
            log=lambda _line: None,
        )
        return "SUCCEEDED"

    return run


@pytest.fixture
def world(
    cluster: Cluster, kfp_api: KfpStandIn, aws: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Deployments, KfpStandIn, Updates]]:
    updates = Updates()
    updates.install(monkeypatch)
    kfp_api.add_pipeline("flywheel-deployment", "v1")
    kfp_api.executor = executor(aws)
    deployments = Deployments(cluster, aws)
    register(deployments.sagemaker, 3)
    put_quiet_alarm(aws_client(aws, "cloudwatch"), ALARM, "quiet")
    yield deployments, kfp_api, updates
    # moto's state is per process: leave no endpoints to a later test that counts them.
    moto_api_backend.reset()


def spec(aws: str, prod_version: int) -> dict[str, Any]:
    return {
        "model": {"name": MODEL, "region": REGION},
        "sagemaker": {
            "role_arn": ROLE,
            "s3_prefix": "s3://flywheel-models/deployments",
            "image_uri": IMAGE,
            "endpoint_url": aws,
        },
        "stages": [
            {
                "name": "staging",
                "follow": "newestApproved",
                "endpoint": {"name": "churn-staging", "rollbackAlarms": [ALARM]},
            },
            {
                "name": "prod",
                "version": prod_version,
                "promoteFrom": "staging",
                "requiresApproval": True,
                "soakMinutes": 0,
                "soakAlarms": [ALARM],
                "endpoint": {
                    "name": "churn-prod",
                    "instanceCount": 2,
                    "trafficShifting": {
                        "type": "CANARY",
                        "canarySize": {"type": "CAPACITY_PERCENT", "value": 50},
                        "waitIntervalSeconds": 0,
                    },
                },
            },
        ],
    }


def runs_for(kfp: KfpStandIn, stage: str) -> list[dict[str, Any]]:
    with kfp.lock:
        return [r for r in kfp.runs.values() if f"-{stage}-" in r["display_name"]]


def test_approval_staging_prod_rollback_and_revert(
    world: tuple[Deployments, KfpStandIn, Updates],
    cluster: Cluster,
    start_operator: Callable[..., OperatorThread],
    aws: str,
) -> None:
    deployments, kfp, updates = world
    start_operator()
    deployments.apply("churn", spec(aws, prod_version=1))
    deployments.wait_stage("churn", "staging", "Pending", reason="NoApprovedVersion")

    # Approve version 1: staging deploys it, once.
    deployments.approve(1)
    deployments.wait_stage("churn", "staging", "Deployed", served=1)
    assert len(runs_for(kfp, "staging")) == 1

    # prod's gates: staging has it, soaked, alarm OK; it waits for its own approval.
    prod = deployments.wait_stage("churn", "prod", "AwaitingApproval")
    assert "flywheel.dev/approve.prod=1" in prod["message"]
    assert runs_for(kfp, "prod") == []
    deployments.patch("churn", {"metadata": {"annotations": {"flywheel.dev/approve.prod": "1"}}})
    deployments.wait_stage("churn", "prod", "Deployed", served=1)
    (prod_run,) = runs_for(kfp, "prod")
    traffic = prod_run["runtime_config"]["parameters"]["traffic_routing"]
    assert traffic["canarySize"] == {"type": "CAPACITY_PERCENT", "value": 50}

    # Version 2 trips the rollback alarm during staging's blue/green update: RolledBack, the
    # old version still serves, and the same version is not tried again.
    updates.alarm_on.add(f"arn:aws:sagemaker:{REGION}:123456789012:model-package/{MODEL}/2")
    deployments.approve(2)
    rolled = deployments.wait_stage("churn", "staging", "RolledBack", served=1)
    assert "rolled back" in rolled["message"] and ALARM in rolled["message"]
    wait_for(lambda: len(runs_for(kfp, "staging")) == 2, what="the rollout of version 2")
    time.sleep(1.5)  # five ticks: a loop would have launched again
    assert len(runs_for(kfp, "staging")) == 2
    assert deployments.stage("churn", "prod")["servedVersion"] == 1

    # Version 3 reaches staging; prod is pinned to 3 in git and approved, then the commit is
    # reverted: prod goes back to 1 with a new deploy, without promotion gates.
    deployments.approve(3)
    deployments.wait_stage("churn", "staging", "Deployed", served=3)
    deployments.patch(
        "churn",
        {
            "metadata": {"annotations": {"flywheel.dev/approve.prod": "3"}},
            "spec": {"stages": spec(aws, prod_version=3)["stages"]},
        },
    )
    deployments.wait_stage("churn", "prod", "Deployed", served=3)
    deployments.patch("churn", {"spec": {"stages": spec(aws, prod_version=1)["stages"]}})
    deployments.wait_stage("churn", "prod", "Deployed", served=1)
    assert len(runs_for(kfp, "prod")) == 3
    blue_green = [r for r in updates.requests if r["EndpointName"] == "churn-prod"]
    assert len(blue_green) == 2  # to 3, then back to 1; the first deploy created the endpoint
    # `kubectl get md` asks for a Table: the printer columns show each stage.
    table = json.load(
        urllib.request.urlopen(
            urllib.request.Request(
                f"{deployments.url}/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{PLURAL}",
                headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
            ),
            timeout=10,
        )
    )
    names = [c["name"] for c in table["columnDefinitions"]]
    (row,) = table["rows"]
    cells = dict(zip(names, row["cells"], strict=True))
    assert cells["Stages"] == "staging=3 (Deployed), prod=1 (Deployed)"
    assert cells["Ready"] == "True"
    reasons = set(cluster.event_reasons("churn"))
    assert {"Deploying", "Launched", "Deployed", "RolledBack"} <= reasons


def test_two_replicas_deploy_each_change_once_through_a_lost_create_and_a_failover(
    world: tuple[Deployments, KfpStandIn, Updates],
    cluster: Cluster,
    aws: str,
    tmp_path: Path,
) -> None:
    deployments, kfp, _ = world
    staging_only = spec(aws, prod_version=1)
    staging_only["stages"] = staging_only["stages"][:1]
    with replica_group(cluster, kfp.url, aws, tmp_path) as replicas:
        replicas.start("replica-a")
        replicas.start("replica-b")  # both at once: one takes the Lease, the other stands by
        leader, standby = replicas.settled(cluster)
        deployments.apply("churn", staging_only)
        # KFP stores the first create but its answer is lost: the retry must adopt that run.
        kfp.crash_after_next_create = True
        deployments.approve(1)
        deployments.wait_stage("churn", "staging", "Deployed", served=1)
        assert len(runs_for(kfp, "staging")) == 1
        leader.kill()  # the leader dies; the standby takes the Lease and the next change
        deployments.approve(2)
        wait_for(standby.leading, timeout=30, what="the standby to lead")
        deployments.wait_stage("churn", "staging", "Deployed", served=2)
    names = [r["display_name"] for r in runs_for(kfp, "staging")]
    assert len(names) == len(set(names)) == 2
