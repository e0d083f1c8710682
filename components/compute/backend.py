"""The compute-backend interface: where a training, processing or batch-transform job runs.

Three implementations share it: ``local`` (a subprocess on this machine), SageMaker (a managed
job) and EKS GPU (the KFP task pod itself). Pipelines and steps speak only to this interface, so
choosing compute is one argument, and the user's script never changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from flywheel.components.contract.metrics import MetricDefinition
from flywheel.components.contract.processing import ProcessingJobSpec, ProcessingResult

LogSink = Callable[[str], None]


@dataclass(frozen=True)
class TrainingJobSpec:
    """Everything a backend needs to run one training job under the training-script contract.

    ``channels`` maps a channel name to a file or folder (local path or ``s3://`` URI) whose
    contents appear in ``SM_CHANNEL_<NAME>``. ``output_location`` is where ``model.tar.gz`` goes.
    """

    job_name: str
    source_dir: str
    entry_point: str
    channels: Mapping[str, str]
    hyperparameters: Mapping[str, object]
    output_location: str
    metric_definitions: tuple[MetricDefinition, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    # Each channel's content type, as ``inputdataconfig.json`` (and SageMaker's Channel) gives it.
    content_types: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingResult:
    """What a finished job left behind: the packed model, the final metrics and its logs' tail."""

    job_name: str
    model_artifact: str
    metrics: Mapping[str, float]
    output_data_artifact: str | None = None


@dataclass(frozen=True)
class TransformJobSpec:
    """Batch scoring: every file under ``input_location`` gives one ``<name>.out`` file.

    The model is served by the same script that trained it, through SageMaker's inference
    handlers (``model_fn``, and optionally ``input_fn``, ``predict_fn``, ``output_fn``), called as
    SageMaker's ``SplitType`` and ``BatchStrategy`` say: once per file (``None``), or per line
    (``Line``), each alone (``SingleRecord``) or grouped up to the payload limit (``MultiRecord``).
    Every backend honours them, so a script is called the same way wherever it runs.
    """

    job_name: str
    model_artifact: str
    source_dir: str
    entry_point: str
    input_location: str
    output_location: str
    content_type: str = "text/csv"
    accept: str = "text/csv"
    environment: Mapping[str, str] = field(default_factory=dict)
    split_type: str = "None"
    batch_strategy: str = "MultiRecord"


@dataclass(frozen=True)
class TransformResult:
    job_name: str
    output_location: str


class ComputeBackend(Protocol):
    """Runs jobs somewhere. Each call blocks until the job ends, streaming its log lines."""

    name: str

    def train(self, spec: TrainingJobSpec, log: LogSink = print) -> TrainingResult:
        """Run the training script; raise ``JobFailedError`` with the script's reason on failure."""
        ...

    def transform(self, spec: TransformJobSpec, log: LogSink = print) -> TransformResult:
        """Score every input file with the trained model."""
        ...

    def process(self, spec: ProcessingJobSpec, log: LogSink = print) -> ProcessingResult:
        """Run the processing script on ``spec.instance_count`` hosts; collect every output.

        Raise ``InvalidSpecError`` before anything runs for a spec that breaks the contract
        (``contract.processing.check_spec``), and ``JobFailedError`` with the script's reason, or
        naming an output the script never wrote, after it.
        """
        ...
