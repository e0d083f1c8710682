"""Applying a placement to a KFP task, field by field, with ``kfp`` and ``kfp-kubernetes``.

The settings land in the compiled pipeline (the task's container resources and the
``platforms.kubernetes`` executor config), so KFP's driver builds the pod with them; no YAML is
patched by hand. ``kfp.local`` ignores them, which is why a local run of the EKS variant trains
on this machine's CPU.
"""

from __future__ import annotations

from kfp import kubernetes
from kfp.dsl import PipelineTask

from flywheel.components.compute.eks.placement import SHM_MOUNT_PATH, Placement
from flywheel.components.contract.training import ML_ROOT

SHM_VOLUME = "dshm"
CACHE_VOLUME = "cache"
OPT_ML_VOLUME = "opt-ml"


def apply_placement(task: PipelineTask, placement: Placement) -> PipelineTask:
    """Set every field of ``placement`` on ``task`` and return it, for chaining.

    The task also gets a writable ``/opt/ml`` of its own, as a SageMaker container has: the job is
    laid out there, so a script's hard-coded ``/opt/ml/...`` paths work in the pod too.
    """
    kubernetes.empty_dir_mount(task, OPT_ML_VOLUME, str(ML_ROOT))
    if placement.accelerator is not None:
        task.set_accelerator_type(placement.accelerator)
        task.set_accelerator_limit(placement.gpus)
        # GPU nodes carry a NoSchedule taint on the GPU resource name so only GPU pods land there.
        kubernetes.add_toleration(
            task, key=placement.accelerator, operator="Exists", effect="NoSchedule"
        )
    if placement.cpu.request is not None:
        task.set_cpu_request(placement.cpu.request)
    if placement.cpu.limit is not None:
        task.set_cpu_limit(placement.cpu.limit)
    if placement.memory.request is not None:
        task.set_memory_request(placement.memory.request)
    if placement.memory.limit is not None:
        task.set_memory_limit(placement.memory.limit)
    if placement.node is not None:
        kubernetes.add_node_selector(task, placement.node.label, placement.node.value)
    if placement.shm_size is not None:
        # PyTorch data loaders and NCCL share tensors through /dev/shm; a container's default is 64Mi.
        kubernetes.empty_dir_mount(
            task, SHM_VOLUME, SHM_MOUNT_PATH, medium="Memory", size_limit=placement.shm_size
        )
    cache = placement.cache
    if cache is not None and cache.pvc is not None:
        kubernetes.mount_pvc(task, cache.pvc, cache.mount_path)
    elif cache is not None:
        kubernetes.add_ephemeral_volume(
            task,
            CACHE_VOLUME,
            cache.mount_path,
            access_modes=[cache.access_mode],
            size=cache.size,
            storage_class_name=cache.storage_class,
        )
    if placement.image_pull_policy is not None:
        kubernetes.set_image_pull_policy(task, placement.image_pull_policy)
    if placement.image_pull_secrets:
        kubernetes.set_image_pull_secrets(task, list(placement.image_pull_secrets))
    for key, value in placement.labels.items():
        kubernetes.add_pod_label(task, key, value)
    for key, value in placement.annotations.items():
        kubernetes.add_pod_annotation(task, key, value)
    if placement.timeout_seconds is not None:
        kubernetes.set_timeout(task, placement.timeout_seconds)
    return task
