"""The EKS GPU backend: the training step runs in the KFP task pod itself, on its GPUs.

KFP's driver has already placed the pod (see :mod:`components.compute.eks.apply`), so nothing is
submitted anywhere: the contract is laid out inside the pod and SageMaker's training toolkit runs
the script there, exactly as on the local backend. The toolkit counts the pod's GPUs itself
(``SM_NUM_GPUS``). With more than one GPU in the placement, the script is started by ``torchrun``,
one process per GPU (data-parallel on one node), as SageMaker's PyTorch container does for
``torch_distributed``. Training on more than one node is the Kubeflow Trainer's or SageMaker's job.

A processing job runs in the pod the same way as on the local backend: each of its
``instance_count`` hosts is a process in the pod (``algo-1`` ... ``algo-N``), sharing its CPUs.
Where the pod forbids a private mount namespace, a one-host job uses the pod's ``/opt/ml`` volume.
"""

from __future__ import annotations

import sys

from flywheel.components.compute.backend import (
    LogSink,
    TrainingJobSpec,
    TrainingResult,
    TransformJobSpec,
    TransformResult,
)
from flywheel.components.compute.eks.placement import Placement
from flywheel.components.compute.local.processing import LocalProcessor
from flywheel.components.compute.local.training import LocalTrainer
from flywheel.components.compute.local.transform import LocalTransformer
from flywheel.components.contract.processing import ProcessingJobSpec, ProcessingResult


class EksGpuBackend:
    """Trains in this pod with ``placement.gpus`` processes; scores and processes in a step's pod."""

    name = "eks-gpu"

    def __init__(self, placement: Placement, python: str = sys.executable) -> None:
        self.placement = placement
        self._trainer = LocalTrainer(python=python, processes_per_host=max(1, placement.gpus))
        self._transformer = LocalTransformer(python=python)
        self._processor = LocalProcessor(python=python)

    def train(self, spec: TrainingJobSpec, log: LogSink = print) -> TrainingResult:
        return self._trainer.train(spec, log)

    def transform(self, spec: TransformJobSpec, log: LogSink = print) -> TransformResult:
        return self._transformer.transform(spec, log)

    def process(self, spec: ProcessingJobSpec, log: LogSink = print) -> ProcessingResult:
        return self._processor.process(spec, log)
