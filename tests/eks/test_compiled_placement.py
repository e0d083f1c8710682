"""The compiled EKS variant carries the whole placement on the train task, and only there.

kfp.local ignores kfp-kubernetes settings, so they are read from the compiled IR: the task's
container resources and the ``platforms.kubernetes`` executor config. That config is then turned
into the pod KFP's driver would create and validated strictly against the Kubernetes schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kfp import compiler

from flywheel.components.compute.eks import Placement
from flywheel.pipelines.training import eks_training_pipeline

TRAIN_EXECUTOR = "exec-train-model"
KUBERNETES_VERSION = "1.33.0"  # manifests/eks/cluster.yaml

EPHEMERAL_CACHE = {
    "gpus": 4,
    "cpu": {"request": "40", "limit": "46"},
    "memory": {"request": "160Gi", "limit": "170Gi"},
    "node": {"nodegroup": "gpu-a10g"},
    "shm_size": "32Gi",
    "cache": {"mount_path": "/cache", "size": "200Gi", "storage_class": "gp3"},
    "image_pull_policy": "Always",
    "image_pull_secrets": ["registry-credentials"],
    "labels": {"team": "chemistry", "cost-center": "4711"},
    "annotations": {"karpenter.sh/do-not-disrupt": "true"},
    "timeout_seconds": 7200,
}
CLAIMED_CACHE = {
    "gpus": 1,
    "node": {"instance_type": "g6e.xlarge"},
    "cache": {"mount_path": "/data", "pvc": "qsar-features"},
}


def compile_eks(placement: dict[str, Any], tmp_path: Path) -> tuple[dict, dict]:
    """The pipeline spec and the platform spec of the EKS variant compiled with ``placement``."""
    target = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(
        eks_training_pipeline(Placement.from_mapping(placement)), str(target)
    )
    pipeline_spec, platform_spec = yaml.safe_load_all(target.read_text())
    return pipeline_spec, platform_spec


def kubernetes_config(platform_spec: dict) -> dict[str, dict]:
    return platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def pod_for(container: dict, config: dict) -> dict:
    """The pod KFP's driver builds for a task: its container plus the kubernetes executor config."""
    resources = container.get("resources", {})
    requests = {
        name: resources[key]
        for name, key in (("cpu", "resourceCpuRequest"), ("memory", "resourceMemoryRequest"))
        if key in resources
    }
    limits = {
        name: resources[key]
        for name, key in (("cpu", "resourceCpuLimit"), ("memory", "resourceMemoryLimit"))
        if key in resources
    }
    if "accelerator" in resources:
        accelerator = resources["accelerator"]
        limits[accelerator["resourceType"]] = accelerator["resourceCount"]
    volumes, mounts = [], []
    for mount in config.get("emptyDirMounts", []):
        volumes.append(
            {
                "name": mount["volumeName"],
                "emptyDir": {
                    key: mount[source]
                    for key, source in (("medium", "medium"), ("sizeLimit", "sizeLimit"))
                    if source in mount
                },
            }
        )
        mounts.append({"name": mount["volumeName"], "mountPath": mount["mountPath"]})
    for volume in config.get("genericEphemeralVolume", []):
        claim = {
            "accessModes": volume["accessModes"],
            "resources": {"requests": {"storage": volume["size"]}},
        }
        if not volume.get("defaultStorageClass"):
            claim["storageClassName"] = volume["storageClassName"]
        volumes.append(
            {"name": volume["volumeName"], "ephemeral": {"volumeClaimTemplate": {"spec": claim}}}
        )
        mounts.append({"name": volume["volumeName"], "mountPath": volume["mountPath"]})
    for claim in config.get("pvcMount", []):
        name = claim["pvcNameParameter"]["runtimeValue"]["constant"]
        volumes.append({"name": name, "persistentVolumeClaim": {"claimName": name}})
        mounts.append({"name": name, "mountPath": claim["mountPath"]})
    main = {
        "name": "main",
        "image": container["image"],
        "command": container["command"],
        "args": container["args"],
        "resources": {"requests": requests, "limits": limits},
        "volumeMounts": mounts,
    }
    if "imagePullPolicy" in config:
        main["imagePullPolicy"] = config["imagePullPolicy"]
    metadata = config.get("podMetadata", {})
    spec: dict[str, Any] = {
        "containers": [main],
        "volumes": volumes,
        "restartPolicy": "Never",
        "serviceAccountName": "flywheel-training",
        "nodeSelector": config.get("nodeSelector", {}).get("labels", {}),
        "tolerations": config.get("tolerations", []),
        "imagePullSecrets": [
            {"name": secret["secretName"]} for secret in config.get("imagePullSecret", [])
        ],
    }
    if "activeDeadlineSeconds" in config:
        spec["activeDeadlineSeconds"] = int(config["activeDeadlineSeconds"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "flywheel-training-eks-gpu-train-model",
            "labels": metadata.get("labels", {}),
            "annotations": metadata.get("annotations", {}),
        },
        "spec": spec,
    }


def test_every_placement_field_lands_on_the_train_task(tmp_path: Path) -> None:
    pipeline_spec, platform_spec = compile_eks(EPHEMERAL_CACHE, tmp_path)
    config = kubernetes_config(platform_spec)
    assert set(config) == {TRAIN_EXECUTOR}, "only the train task is placed on GPU nodes"
    train = config[TRAIN_EXECUTOR]
    assert train["nodeSelector"] == {"labels": {"eks.amazonaws.com/nodegroup": "gpu-a10g"}}
    assert train["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert train["emptyDirMounts"] == [
        {"volumeName": "opt-ml", "mountPath": "/opt/ml"},
        {"volumeName": "dshm", "mountPath": "/dev/shm", "medium": "Memory", "sizeLimit": "32Gi"},
    ]
    (cache,) = train["genericEphemeralVolume"]
    assert cache["mountPath"] == "/cache" and cache["size"] == "200Gi"
    assert cache["storageClassName"] == "gp3" and cache["accessModes"] == ["ReadWriteOnce"]
    assert train["imagePullPolicy"] == "Always"
    assert train["imagePullSecret"][0]["secretName"] == "registry-credentials"
    assert train["podMetadata"] == {
        "labels": {"team": "chemistry", "cost-center": "4711"},
        "annotations": {"karpenter.sh/do-not-disrupt": "true"},
    }
    assert int(train["activeDeadlineSeconds"]) == 7200

    resources = pipeline_spec["deploymentSpec"]["executors"][TRAIN_EXECUTOR]["container"][
        "resources"
    ]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert resources["accelerator"]["resourceCount"] == "4"
    assert (resources["resourceCpuRequest"], resources["resourceCpuLimit"]) == ("40", "46")
    assert (resources["resourceMemoryRequest"], resources["resourceMemoryLimit"]) == (
        "160Gi",
        "170Gi",
    )
    for name, executor in pipeline_spec["deploymentSpec"]["executors"].items():
        if name != TRAIN_EXECUTOR:
            assert "resources" not in executor["container"], f"{name} asks for resources"


def test_the_variant_defaults_to_eks_gpu_and_tells_the_pod_its_gpu_count(tmp_path: Path) -> None:
    pipeline_spec, _ = compile_eks(EPHEMERAL_CACHE, tmp_path)
    parameters = pipeline_spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["compute"]["defaultValue"] == "eks-gpu"
    assert parameters["compute_config"]["defaultValue"] == {"gpus": 4}
    assert parameters["workload"]["defaultValue"] == "builtin:qsar-torch"


@pytest.mark.parametrize("placement", [EPHEMERAL_CACHE, CLAIMED_CACHE], ids=["ephemeral", "pvc"])
def test_the_pod_kfp_would_create_is_valid_kubernetes(placement: dict, tmp_path: Path) -> None:
    pipeline_spec, platform_spec = compile_eks(placement, tmp_path)
    container = pipeline_spec["deploymentSpec"]["executors"][TRAIN_EXECUTOR]["container"]
    pod = pod_for(container, kubernetes_config(platform_spec)[TRAIN_EXECUTOR])
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == str(
        placement["gpus"]
    )


def test_strict_validation_catches_what_a_broken_placement_would_produce(tmp_path: Path) -> None:
    pipeline_spec, platform_spec = compile_eks(EPHEMERAL_CACHE, tmp_path)
    container = pipeline_spec["deploymentSpec"]["executors"][TRAIN_EXECUTOR]["container"]
    pod = pod_for(container, kubernetes_config(platform_spec)[TRAIN_EXECUTOR])
    pod["spec"]["tolerations"][0]["tolerationSeconds"] = "forever"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
