"""The embedded default compute: jobs run as subprocesses on this machine."""

from __future__ import annotations

from flywheel.components.compute.backend import (
    LogSink,
    TrainingJobSpec,
    TrainingResult,
    TransformJobSpec,
    TransformResult,
)
from flywheel.components.compute.local.training import LocalTrainer
from flywheel.components.compute.local.transform import LocalTransformer


class LocalBackend:
    """Training and batch transform on this machine, under the same contract as SageMaker."""

    name = "local"

    def __init__(self) -> None:
        self._trainer = LocalTrainer()
        self._transformer = LocalTransformer()

    def train(self, spec: TrainingJobSpec, log: LogSink = print) -> TrainingResult:
        return self._trainer.train(spec, log)

    def transform(self, spec: TransformJobSpec, log: LogSink = print) -> TransformResult:
        return self._transformer.transform(spec, log)


__all__ = ["LocalBackend"]
