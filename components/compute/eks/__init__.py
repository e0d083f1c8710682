"""EKS GPU compute: a typed placement and the backend that trains in the task pod.

``apply_placement`` lives in :mod:`components.compute.eks.apply` and is not exported here: it needs
kfp's pipeline-building API, which a running KFP task cannot import, and the backend runs there.
"""

from pathlib import Path

from flywheel.components.compute.eks.backend import EksGpuBackend
from flywheel.components.compute.eks.placement import Placement, load_placement

# The placement the compiled ``training-eks-gpu`` pipeline carries; it targets the GPU node group
# of manifests/eks/cluster.yaml.
DEFAULT_PLACEMENT_FILE = Path(__file__).with_name("default_placement.yaml")

__all__ = [
    "DEFAULT_PLACEMENT_FILE",
    "EksGpuBackend",
    "Placement",
    "load_placement",
]
