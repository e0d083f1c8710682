"""The EKS manifests: the right kinds, and GPU nodes, taints, labels and placement that fit together."""

from __future__ import annotations

from pathlib import Path

import yaml

from flywheel.components.compute.eks import DEFAULT_PLACEMENT_FILE, load_placement
from flywheel.components.compute.eks.placement import NODE_LABELS

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests" / "eks"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
GPU_INSTANCE_FAMILIES = ("g4dn", "g5", "g6", "g6e", "p4d", "p5")


def load_all(name: str) -> list[dict]:
    return [document for document in yaml.safe_load_all((MANIFESTS / name).read_text()) if document]


def by_kind(documents: list[dict]) -> dict[str, dict]:
    return {document["kind"]: document for document in documents}


def cluster() -> dict:
    (config,) = load_all("cluster.yaml")
    return config


def node_groups() -> dict[str, dict]:
    return {group["name"]: group for group in cluster()["managedNodeGroups"]}


def tolerates(toleration: dict, taint: dict) -> bool:
    """Kubernetes' rule for one toleration against one taint."""
    if toleration.get("effect") not in (None, "", taint["effect"]):
        return False
    if toleration.get("operator") == "Exists":
        return toleration.get("key") in (None, "", taint["key"])
    return toleration.get("key") == taint["key"] and toleration.get("value") == taint.get("value")


def test_eksctl_cluster_has_oidc_a_system_group_and_a_tainted_gpu_group() -> None:
    config = cluster()
    assert (config["apiVersion"], config["kind"]) == ("eksctl.io/v1alpha5", "ClusterConfig")
    assert config["iam"]["withOIDC"] is True
    groups = node_groups()
    assert set(groups) == {"system", "gpu"}
    assert not groups["system"].get("taints")
    gpu = groups["gpu"]
    assert gpu["instanceType"].split(".")[0] in GPU_INSTANCE_FAMILIES
    # With a GPU instance type, eksctl resolves AmazonLinux2023 to the accelerated NVIDIA AMI.
    assert gpu["amiFamily"] == "AmazonLinux2023"
    assert gpu["taints"] == [GPU_TAINT]
    assert gpu["labels"]["flywheel.io/gpu"] == "nvidia"


def test_eksctl_creates_the_runs_service_account_with_an_iam_role() -> None:
    accounts = {
        account["metadata"]["name"]: account for account in cluster()["iam"]["serviceAccounts"]
    }
    training = accounts["flywheel-training"]
    assert training["metadata"]["namespace"] == "kubeflow"
    statements = training["attachPolicy"]["Statement"]
    assert any("s3:PutObject" in statement["Action"] for statement in statements)


def test_karpenter_pool_offers_spot_and_on_demand_gpu_nodes_with_the_same_taint() -> None:
    kinds = by_kind(load_all("karpenter-gpu.yaml"))
    pool, node_class = kinds["NodePool"], kinds["EC2NodeClass"]
    assert pool["apiVersion"] == "karpenter.sh/v1"
    assert node_class["apiVersion"] == "karpenter.k8s.aws/v1"
    template = pool["spec"]["template"]
    assert template["spec"]["nodeClassRef"] == {
        "group": "karpenter.k8s.aws",
        "kind": "EC2NodeClass",
        "name": node_class["metadata"]["name"],
    }
    requirements = {r["key"]: r for r in template["spec"]["requirements"]}
    assert set(requirements["karpenter.sh/capacity-type"]["values"]) == {"spot", "on-demand"}
    assert requirements["karpenter.k8s.aws/instance-gpu-manufacturer"]["values"] == ["nvidia"]
    assert template["spec"]["taints"] == [GPU_TAINT]
    assert template["metadata"]["labels"]["flywheel.io/gpu"] == "nvidia"
    assert "nvidia.com/gpu" in pool["spec"]["limits"]
    (ami,) = node_class["spec"]["amiSelectorTerms"]
    assert ami["alias"].startswith("al2023@v"), "pin the AMI version"
    discovery = {"karpenter.sh/discovery": cluster()["metadata"]["name"]}
    assert node_class["spec"]["subnetSelectorTerms"] == [{"tags": discovery}]
    assert node_class["spec"]["securityGroupSelectorTerms"] == [{"tags": discovery}]


def test_device_plugin_runs_on_every_gpu_node_of_both_kinds() -> None:
    values = yaml.safe_load((MANIFESTS / "nvidia-device-plugin-values.yaml").read_text())
    (term,) = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    pool = by_kind(load_all("karpenter-gpu.yaml"))["NodePool"]["spec"]["template"]
    for labels, taints in (
        (node_groups()["gpu"]["labels"], node_groups()["gpu"]["taints"]),
        (pool["metadata"]["labels"], pool["spec"]["taints"]),
    ):
        for expression in term["matchExpressions"]:
            assert labels.get(expression["key"]) in expression["values"]
        for taint in taints:
            assert any(tolerates(t, taint) for t in values["tolerations"])


def test_default_placement_lands_on_the_gpu_node_group_of_the_cluster() -> None:
    placement = load_placement(DEFAULT_PLACEMENT_FILE)
    assert placement.node is not None
    assert placement.node.label == NODE_LABELS["nodegroup"]
    group = node_groups()[placement.node.value]
    toleration = {"key": placement.accelerator, "operator": "Exists", "effect": "NoSchedule"}
    assert all(tolerates(toleration, taint) for taint in group["taints"])
