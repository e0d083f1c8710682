"""The EKS GPU backend: the training step runs in the KFP task pod itself, on its GPUs.

KFP's driver has already placed the pod (see :mod:`components.eks.apply`), so nothing is
submitted anywhere: the contract is laid out inside the pod and the script runs there, exactly as
on the local backend. What differs is the GPU count: the script sees it as ``SM_NUM_GPUS``, and
with more than one GPU it is started by ``torchrun``, one process per GPU (data-parallel on one
node). Training on more than one node is the Kubeflow Trainer's or SageMaker's job, not ours.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from flywheel.components.backend import (
    LogSink,
    TrainingJobSpec,
    TrainingResult,
    TransformJobSpec,
    TransformResult,
)
from flywheel.components.eks.placement import Placement
from flywheel.components.local.training import LocalTrainer
from flywheel.components.local.transform import LocalTransformer


def torchrun_launcher(gpus: int, python: str = sys.executable) -> tuple[str, ...]:
    """``torchrun --standalone --nproc_per_node=N`` for several GPUs; none for one or zero.

    Run as ``python -m torch.distributed.run`` so it is the interpreter that has torch, whatever
    is on ``PATH``.
    """
    if gpus <= 1:
        return ()
    return (python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}")


class EksGpuBackend:
    """Trains in this pod with ``placement.gpus`` GPUs; scores in the evaluate step's pod."""

    name = "eks-gpu"

    def __init__(self, placement: Placement, python: str = sys.executable) -> None:
        self.placement = placement
        self._trainer = LocalTrainer(
            python=python, launcher=torchrun_launcher(placement.gpus, python)
        )
        self._transformer = LocalTransformer(python=python)

    def train(self, spec: TrainingJobSpec, log: LogSink = print) -> TrainingResult:
        gpus = {"SM_NUM_GPUS": str(self.placement.gpus)}
        return self._trainer.train(replace(spec, environment={**gpus, **spec.environment}), log)

    def transform(self, spec: TransformJobSpec, log: LogSink = print) -> TransformResult:
        return self._transformer.transform(spec, log)
