"""The processing-script contract: SageMaker Processing's container contract, laid out anywhere.

A processing script (a ``preprocessing.py`` or an ``evaluation.py`` written for SageMaker
Processing) reads its inputs from ``/opt/ml/processing/...`` folders, writes its outputs to other
such folders, takes ``ContainerArguments`` as argv and finds the job's set-up in
``/opt/ml/config/processingjobconfig.json`` and ``resourceconfig.json``. Every backend (local,
SageMaker, an EKS pod) runs the same :class:`ProcessingJobSpec` under that contract, so the script
runs unchanged everywhere.

The code travels as the SageMaker Python SDK's ``FrameworkProcessor`` sends it: the source folder
packed as ``sourcedir.tar.gz`` in the input ``code`` and a ``runproc.sh`` in the input
``entrypoint``, which unpacks it, installs a ``requirements.txt`` found there and runs the script
with the arguments. This module is the one place that knows these paths and limits; the limits
themselves are the service model's (``CreateProcessingJob``), checked here before any job starts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from flywheel.components.errors import InvalidSpecError

PROCESSING_ROOT = PurePosixPath("/opt/ml/processing")
CONFIG_DIR = PurePosixPath("/opt/ml/config")
PROCESSING_JOB_CONFIG_FILE_NAME = "processingjobconfig.json"
RESOURCE_CONFIG_FILE_NAME = "resourceconfig.json"
# Where SageMaker Processing keeps what a container says when it exits (DescribeProcessingJob's
# ExitMessage, up to 1 KB); Flywheel shows it as the job's failure reason when the script fails.
EXIT_MESSAGE_FILE = PurePosixPath("/opt/ml/output/message")
EXIT_MESSAGE_LIMIT = 1024
# The inputs that carry the code, as the SageMaker Python SDK's FrameworkProcessor names them.
CODE_INPUT = "code"
ENTRYPOINT_INPUT = "entrypoint"
RUNPROC_SCRIPT = "runproc.sh"
SOURCE_ARCHIVE = "sourcedir.tar.gz"
DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")
# CreateProcessingJob's limits (botocore's service model: ProcessingInputs, ProcessingOutputs,
# ContainerArguments, ProcessingEnvironmentMap); the two code inputs count against the ten.
MAX_INPUTS = 10
MAX_OUTPUTS = 10
MAX_ARGUMENTS = 100
MAX_ENVIRONMENT = 100
MAX_INSTANCES = 100
# Each ContainerArguments / ContainerEntrypoint item and each Environment value.
MAX_STRING = 256
# InputName and OutputName: the service model sets no pattern on them, but a name becomes a
# folder and an S3 key here, so it follows ProcessingJobName's pattern.
_IO_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_ENV_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,255}$")


@dataclass(frozen=True)
class ProcessingInput:
    """Files that appear in ``local_path`` before the script starts (SageMaker's ``ProcessingInput``).

    ``source`` is a local file or folder or an ``s3://`` prefix. ``ShardedByS3Key`` hands each
    instance its own share of the objects; ``FullyReplicated`` gives every instance all of them.
    """

    name: str
    source: str
    local_path: str = ""
    distribution: str = "FullyReplicated"

    @property
    def path(self) -> PurePosixPath:
        return PurePosixPath(self.local_path or f"{PROCESSING_ROOT}/input/{self.name}")


@dataclass(frozen=True)
class ProcessingOutput:
    """A folder the script writes (``local_path``), collected after the job (``ProcessingOutput``).

    ``destination`` is a local folder or an ``s3://`` prefix; empty, the backend chooses one.
    Outputs of every instance land in the same destination, as SageMaker uploads them.
    """

    name: str
    local_path: str = ""
    destination: str = ""

    @property
    def path(self) -> PurePosixPath:
        return PurePosixPath(self.local_path or f"{PROCESSING_ROOT}/output/{self.name}")


@dataclass(frozen=True)
class ProcessingJobSpec:
    """Everything a backend needs to run one processing job under the processing contract.

    ``entry_point`` is a script in ``source_dir``. ``container_entrypoint``, when given, replaces
    the SDK's ``runproc.sh`` as ``ContainerEntrypoint`` (then nothing is unpacked or installed:
    the command runs as given, with ``arguments`` after it).
    """

    job_name: str
    source_dir: str
    entry_point: str
    inputs: tuple[ProcessingInput, ...] = ()
    outputs: tuple[ProcessingOutput, ...] = ()
    arguments: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    container_entrypoint: tuple[str, ...] = ()
    instance_count: int = 1
    # Run only these hosts (0-based) of the ``instance_count``: one KFP task per host, so on EKS
    # each shard is a pod of its own. Empty runs them all. SageMaker always runs every host.
    host_indexes: tuple[int, ...] = ()


@dataclass(frozen=True)
class ProcessingResult:
    """A finished job: its name and, per output, where its files now are (a folder or S3 prefix)."""

    job_name: str
    outputs: Mapping[str, str]


def code_path() -> PurePosixPath:
    return PROCESSING_ROOT / "input" / CODE_INPUT


def entrypoint_path() -> PurePosixPath:
    return PROCESSING_ROOT / "input" / ENTRYPOINT_INPUT


def container_entrypoint(spec: ProcessingJobSpec) -> list[str]:
    """``ContainerEntrypoint``: the spec's own, or the SDK's ``/bin/bash .../runproc.sh``."""
    if spec.container_entrypoint:
        return list(spec.container_entrypoint)
    return ["/bin/bash", str(entrypoint_path() / RUNPROC_SCRIPT)]


def runproc_script(entry_point: str) -> str:
    """The ``runproc.sh`` the SageMaker Python SDK's FrameworkProcessor writes for ``entry_point``.

    Verbatim from ``_generate_framework_script`` (sagemaker-python-sdk v2.257.6) with the default
    ``command`` (``python``) and no CodeArtifact repository: it unpacks the code where the
    ``code`` input put it, installs ``requirements.txt`` when there is one, and runs the script
    with the job's arguments. ``set -e`` comes after ``tar``, as there.
    """
    return f"""#!/bin/bash

cd {code_path()}/
tar -xzf {SOURCE_ARCHIVE}

# Exit on any error. SageMaker uses error code to mark failed job.
set -e

if [[ -f 'requirements.txt' ]]; then
    # Optionally log into CodeArtifact
    if ! hash aws 2>/dev/null; then
        echo "AWS CLI is not installed. Skipping CodeArtifact login."
    else
        echo 'CodeArtifact repository not specified. Skipping login.'
    fi

    # Some py3 containers has typing, which may breaks pip install
    pip uninstall --yes typing

    python -m pip install -r requirements.txt
fi

python {entry_point} "$@"
"""


def _fail(field_name: str, problem: str) -> None:
    raise InvalidSpecError(field_name, problem)


def _check_local_path(field_name: str, path: PurePosixPath) -> None:
    if not path.is_absolute() or ".." in path.parts or not path.is_relative_to(PROCESSING_ROOT):
        _fail(field_name, f"{path} is not a folder under {PROCESSING_ROOT}")
    if path == PROCESSING_ROOT:
        _fail(field_name, f"{path} is {PROCESSING_ROOT} itself; give a folder under it")


def _check_unique(kind: str, items: Sequence[ProcessingInput | ProcessingOutput]) -> None:
    seen_names: dict[str, int] = {}
    seen_paths: dict[PurePosixPath, int] = {}
    for index, item in enumerate(items):
        where = f"processing.{kind}[{index}]"
        if item.name in seen_names:
            _fail(f"{where}.name", f"{item.name!r} is also {kind}[{seen_names[item.name]}]")
        if item.path in seen_paths:
            _fail(
                f"{where}.local_path", f"{item.path} is also {kind}[{seen_paths[item.path]}]'s path"
            )
        seen_names[item.name] = index
        seen_paths[item.path] = index


def _nested(paths: dict[str, PurePosixPath]) -> None:
    """Two inputs, or two outputs, may not sit one inside the other: one would hide the other."""
    for field_name, path in paths.items():
        for other_field, other in paths.items():
            if other != path and other.is_relative_to(path):
                _fail(other_field, f"{other} lies inside {path} ({field_name})")


def check_spec(spec: ProcessingJobSpec) -> ProcessingJobSpec:
    """Refuse, naming the field, what SageMaker Processing would refuse or a script could not use.

    Runs before any job starts on every backend, so the same spec fails the same way everywhere.
    """
    reserved = {CODE_INPUT, ENTRYPOINT_INPUT}
    if not spec.source_dir:
        _fail("processing.source_dir", "is empty; give the folder that holds the script")
    if not spec.entry_point and not spec.container_entrypoint:
        _fail("processing.entry_point", "is empty; give the script to run")
    if len(spec.inputs) + len(reserved) > MAX_INPUTS:
        _fail(
            "processing.inputs",
            f"{len(spec.inputs)} inputs; at most {MAX_INPUTS - len(reserved)} are allowed "
            f"(SageMaker takes {MAX_INPUTS}, and the code arrives through {len(reserved)} of them)",
        )
    if len(spec.outputs) > MAX_OUTPUTS:
        _fail("processing.outputs", f"{len(spec.outputs)} outputs; at most {MAX_OUTPUTS} allowed")
    if len(spec.arguments) > MAX_ARGUMENTS:
        _fail(
            "processing.arguments",
            f"{len(spec.arguments)} arguments; at most {MAX_ARGUMENTS} allowed",
        )
    if len(spec.environment) > MAX_ENVIRONMENT:
        _fail(
            "processing.environment",
            f"{len(spec.environment)} entries; at most {MAX_ENVIRONMENT} allowed",
        )
    for index, argument in enumerate(spec.arguments):
        if len(argument) > MAX_STRING:
            _fail(
                f"processing.arguments[{index}]",
                f"{len(argument)} characters; at most {MAX_STRING}",
            )
    if len(spec.container_entrypoint) > MAX_ARGUMENTS:
        _fail(
            "processing.container_entrypoint",
            f"{len(spec.container_entrypoint)} items; at most {MAX_ARGUMENTS} allowed",
        )
    for name, value in spec.environment.items():
        if not _ENV_NAME.match(name):
            _fail(f"processing.environment.{name}", "must be a letter or _ then letters, digits, _")
        if len(value) > MAX_STRING:
            _fail(
                f"processing.environment.{name}", f"{len(value)} characters; at most {MAX_STRING}"
            )
    if not 1 <= spec.instance_count <= MAX_INSTANCES:
        _fail("processing.instance_count", f"must be 1-{MAX_INSTANCES}, got {spec.instance_count}")
    for index in spec.host_indexes:
        if not 0 <= index < spec.instance_count:
            _fail(
                "processing.host_index",
                f"{index} is not a host of {spec.instance_count}: use 0-{spec.instance_count - 1}",
            )
    if len(set(spec.host_indexes)) != len(spec.host_indexes):
        _fail("processing.host_index", f"{list(spec.host_indexes)} names a host twice")
    input_paths: dict[str, PurePosixPath] = {}
    for index, item in enumerate(spec.inputs):
        where = f"processing.inputs[{index}]"
        if not _IO_NAME.match(item.name):
            _fail(f"{where}.name", f"{item.name!r} must be 1-63 letters, digits and hyphens")
        if item.name in reserved:
            _fail(f"{where}.name", f"{item.name!r} is where the code arrives; choose another name")
        if item.distribution not in DISTRIBUTIONS:
            _fail(
                f"{where}.distribution",
                f"{item.distribution!r} is not one of {list(DISTRIBUTIONS)}",
            )
        if not item.source:
            _fail(f"{where}.source", "is empty; give a local path or an s3:// prefix")
        _check_local_path(f"{where}.local_path", item.path)
        if item.path.is_relative_to(code_path()) or item.path.is_relative_to(entrypoint_path()):
            _fail(f"{where}.local_path", f"{item.path} is where the code arrives")
        input_paths[f"{where}.local_path"] = item.path
    output_paths: dict[str, PurePosixPath] = {}
    for index, item in enumerate(spec.outputs):
        where = f"processing.outputs[{index}]"
        if not _IO_NAME.match(item.name):
            _fail(f"{where}.name", f"{item.name!r} must be 1-63 letters, digits and hyphens")
        _check_local_path(f"{where}.local_path", item.path)
        output_paths[f"{where}.local_path"] = item.path
    _check_unique("inputs", spec.inputs)
    _check_unique("outputs", spec.outputs)
    _nested(input_paths)
    _nested(output_paths)
    return spec


def host_names(instance_count: int) -> list[str]:
    """The hosts of a processing cluster, as SageMaker names them: ``algo-1`` ... ``algo-N``."""
    return [f"algo-{index}" for index in range(1, instance_count + 1)]


def resource_config(host: str, instance_count: int) -> dict[str, Any]:
    """``/opt/ml/config/resourceconfig.json`` of one host: itself among all hosts."""
    return {"current_host": host, "hosts": host_names(instance_count)}


def shard(keys: Sequence[str], host_index: int, instance_count: int) -> list[str]:
    """The objects ``ShardedByS3Key`` gives host ``host_index`` (0-based): every N-th sorted key.

    SageMaker documents only that each instance gets about 1/N of the objects, each object going
    to exactly one instance; the order it uses is not documented, so sorted keys dealt in turn.
    """
    return sorted(keys)[host_index::instance_count]


def processing_job_config(
    spec: ProcessingJobSpec,
    *,
    arn: str,
    image: str,
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
    instance_type: str,
    role_arn: str = "",
) -> dict[str, Any]:
    """``/opt/ml/config/processingjobconfig.json``: the job's request as SageMaker writes it.

    ``inputs`` and ``outputs`` map each name (code inputs included) to its S3 or local location.
    """
    by_name = {item.name: item for item in spec.inputs}
    return {
        "ProcessingJobArn": arn,
        "ProcessingJobName": spec.job_name,
        "AppSpecification": {
            "ImageUri": image,
            "ContainerEntrypoint": container_entrypoint(spec),
            # The documented sample writes an absent optional field as null.
            "ContainerArguments": list(spec.arguments) or None,
        },
        "Environment": dict(spec.environment),
        "ProcessingInputs": [
            {
                "InputName": name,
                "AppManaged": False,
                "S3Input": {
                    "S3Uri": uri,
                    "LocalPath": str(
                        by_name[name].path if name in by_name else PROCESSING_ROOT / "input" / name
                    ),
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": by_name[name].distribution
                    if name in by_name
                    else "FullyReplicated",
                    "S3CompressionType": "None",
                    "S3DownloadMode": "StartOfJob",
                },
            }
            for name, uri in inputs.items()
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": item.name,
                    "AppManaged": False,
                    "S3Output": {
                        "S3Uri": outputs[item.name],
                        "LocalPath": str(item.path),
                        "S3UploadMode": "EndOfJob",
                    },
                }
                for item in spec.outputs
            ],
            "KmsKeyId": None,
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": spec.instance_count,
                "InstanceType": instance_type,
                "VolumeSizeInGB": 30,
                "VolumeKmsKeyId": None,
            }
        },
        "RoleArn": role_arn,
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
    }


def write_config_files(
    config_dir: Path, *, job_config: Mapping[str, Any], host: str, instance_count: int
) -> None:
    """Write the two files of ``/opt/ml/config`` that SageMaker writes before a processing job."""
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / PROCESSING_JOB_CONFIG_FILE_NAME).write_text(
        json.dumps(job_config, indent=2, sort_keys=True)
    )
    (config_dir / RESOURCE_CONFIG_FILE_NAME).write_text(
        json.dumps(resource_config(host, instance_count), indent=2, sort_keys=True)
    )
