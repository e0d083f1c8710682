"""The compute-backend interface: where a training, processing or batch-transform job runs.

Three implementations share it: ``local`` (a subprocess on this machine), SageMaker (a managed
job) and EKS GPU (the KFP task pod itself). Pipelines and steps speak only to this interface, so
choosing compute is one argument, and the user's script never changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from flywheel.components.contract.metrics import MetricDefinition
from flywheel.components.contract.processing import ProcessingJobSpec, ProcessingResult

LogSink = Callable[[str], None]


class StopJob(Exception):
    """Raised by a log sink to stop the job whose log it follows, then and there.

    The local and EKS GPU backends stop the job's every process (the script, its workers) and let
    this exception go on to the step that raised it: a tuning trial the pruner stops
    (``steps.trial_pruning``). The SageMaker backend does not take it; nothing asks it to.
    """


# One "MB" of batch transform's MaxPayloadInMB, in bytes. AWS documents the field only as "MB";
# the serving toolkits and the SDK's local mode count 1024 * 1024. Every backend enforces the
# smaller reading, 10^6 bytes, so a request within it is within the limit whichever unit
# SageMaker means.
PAYLOAD_MB = 1_000_000
# SageMaker's default MaxPayloadInMB.
DEFAULT_MAX_PAYLOAD_MB = 6
# Scoring files holding one record per line and nothing else: they can be cut at newlines.
LINE_RECORD_TYPES = ("text/csv", "application/jsonlines")


def payload_limit(max_payload_mb: int) -> int:
    """``MaxPayloadInMB`` in bytes, read as 10^6 bytes per MB; 0 (chunked encoding) means no limit."""
    return max_payload_mb * PAYLOAD_MB


def is_line_record(content_type: str, split_type: str) -> bool:
    """Whether a scoring file of ``content_type`` holds one record per line and nothing else."""
    return content_type in LINE_RECORD_TYPES or (
        split_type == "Line" and content_type == "application/json"
    )


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
    """What a finished job left behind: the packed model, the final metrics, each metric's
    series as its log showed it (``(step, value)`` pairs), and what it wrote as output data."""

    job_name: str
    model_artifact: str
    metrics: Mapping[str, float]
    output_data_artifact: str | None = None
    metric_series: Mapping[str, Sequence[tuple[int, float]]] = field(default_factory=dict)


@dataclass(frozen=True)
class TransformJobSpec:
    """Batch scoring: every file under ``input_location`` gives one ``<name>.out`` file.

    The model is served by ``entry_point`` from ``source_dir`` (the training script, or the
    workload's ``serving.entry_point``/``source_dir``), with each of ``dependencies`` (folders)
    shipped beside it as the SDK ships them, through SageMaker's inference handlers (``model_fn``,
    and ``input_fn``, ``predict_fn``, ``output_fn`` or ``transform_fn``), whatever the script
    leaves out being the default of ``framework``'s serving container (None: sagemaker-inference's
    generic defaults; ``"sklearn"``, ``"xgboost"``, ``"pytorch"``), called as
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
    # The workload's ``framework`` (sklearn, xgboost, pytorch or None): whose serving container,
    # and so whose default handlers and code layout, serve the model.
    framework: str | None = None
    # Folders shipped beside the serving code, each under its own name (the SDK's
    # ``dependencies``), so ``import <name>`` works from ``entry_point``.
    dependencies: tuple[str, ...] = ()


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
