"""The embedded default compute: jobs run as subprocesses on this machine."""

from __future__ import annotations

from flywheel.components.compute.backend import (
    LogSink,
    TrainingJobSpec,
    TrainingResult,
    TransformJobSpec,
    TransformResult,
)
from flywheel.components.compute.local.processing import LocalProcessor
from flywheel.components.compute.local.training import LocalTrainer
from flywheel.components.compute.local.transform import LocalTransformer
from flywheel.components.contract.processing import ProcessingJobSpec, ProcessingResult


class LocalBackend:
    """Training, processing and batch transform on this machine, under SageMaker's contracts.

    A processing job's hosts are processes side by side; an output with no destination goes to
    ``<temp>/flywheel-processing/<job>/<output name>`` (``LocalProcessor``).
    """

    name = "local"

    def __init__(self) -> None:
        self._trainer = LocalTrainer()
        self._transformer = LocalTransformer()
        self._processor = LocalProcessor()

    def train(self, spec: TrainingJobSpec, log: LogSink = print) -> TrainingResult:
        return self._trainer.train(spec, log)

    def transform(self, spec: TransformJobSpec, log: LogSink = print) -> TransformResult:
        return self._transformer.transform(spec, log)

    def process(self, spec: ProcessingJobSpec, log: LogSink = print) -> ProcessingResult:
        return self._processor.process(spec, log)


__all__ = ["LocalBackend"]
