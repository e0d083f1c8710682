"""Run a SageMaker Create*Job request as the service runs its container, on this machine.

The moto stand-in accepts jobs and runs nothing. These functions take the request moto accepted
and do what SageMaker does with it: fetch each input from S3, lay it out under ``/opt/ml`` and run
the job's code under the container contract, then put what the job wrote back on S3. The running
is Flywheel's own local backend (``LocalProcessor``, ``LocalTrainer``), which implements the same
contracts; this module only translates the request into their specs, checking on the way that the
request is one the real container would run the same way (the uploaded ``runproc.sh`` is the SDK's,
the code archive is what it holds).

Test code only. S3 is reached through the client passed in (moto's), never the default one.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flywheel.components.compute.backend import TrainingJobSpec, TrainingResult
from flywheel.components.compute.local.processing import LocalProcessor
from flywheel.components.compute.local.training import LocalTrainer
from flywheel.components.contract import processing as contract
from flywheel.components.contract.metrics import MetricDefinition
from flywheel.components.contract.packaging import (
    MODEL_ARCHIVE,
    OUTPUT_ARCHIVE,
    pack_source,
    unpack_archive,
)
from flywheel.components.errors import JobFailedError

LogSink = Callable[[str], None]
_RUNPROC_PROGRAM = re.compile(r'^python (?P<entry_point>.*) "\$@"$', re.MULTILINE)


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def download_prefix(s3: Any, uri: str, target: Path) -> int:
    """Every object under the S3Prefix ``uri`` into ``target``, as File mode copies it; how many.

    The prefix matches as S3Prefix does: ``s3://b/data`` matches ``data/a.csv`` and ``data.csv``.
    """
    bucket, prefix = split_uri(uri)
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix) :].lstrip("/") or Path(item["Key"]).name
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(destination))
            count += 1
    return count


def upload_folder(s3: Any, folder: Path, uri: str) -> None:
    """Every file under ``folder`` to the prefix ``uri``, by relative path, as EndOfJob uploads."""
    bucket, prefix = split_uri(uri)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = "/".join(filter(None, [prefix.rstrip("/"), path.relative_to(folder).as_posix()]))
        s3.upload_file(str(path), bucket, key)


def _fetch_object(s3: Any, uri: str, target: Path) -> Path:
    bucket, key = split_uri(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    s3.download_file(bucket, key, str(target))
    return target


def _unpack_code(s3: Any, uri: str, scratch: Path, job_name: str) -> Path:
    """The uploaded ``sourcedir.tar.gz``, extracted; refused unless it is exactly that folder packed.

    The local backend packs the folder again, so the code that runs must be byte for byte the
    code that was uploaded: ``pack_source`` is reproducible, so repacking must give the same bytes.
    """
    archive = _fetch_object(s3, uri, scratch / "uploaded" / contract.SOURCE_ARCHIVE)
    source = unpack_archive(archive, scratch / "code")
    repacked = pack_source(source, scratch / "repacked")
    if repacked.read_bytes() != archive.read_bytes():
        raise JobFailedError(
            job_name,
            f"{uri} is not a sourcedir.tar.gz as Flywheel packs it; it would run other code",
        )
    return source


def _one_s3_input(job_name: str, item: Mapping[str, Any]) -> Mapping[str, Any]:
    s3_input = item.get("S3Input")
    if s3_input is None:
        raise JobFailedError(job_name, f"input {item['InputName']!r}: only S3Input is supported")
    unsupported = {
        "S3DataType": "S3Prefix",
        "S3InputMode": "File",
        "S3CompressionType": "None",
    }
    for field_name, supported in unsupported.items():
        if s3_input.get(field_name, supported) != supported:
            raise JobFailedError(
                job_name,
                f"input {item['InputName']!r}: {field_name} {s3_input[field_name]!r} is not "
                f"supported by the stand-in (only {supported!r})",
            )
    return s3_input


def processing_spec(
    s3: Any, request: Mapping[str, Any], scratch: Path
) -> tuple[contract.ProcessingJobSpec, dict[str, str]]:
    """The ``ProcessingJobSpec`` that runs ``request`` as SageMaker would, and each output's S3 URI.

    Inputs are fetched from S3 into ``scratch`` (the local backend shards the files per host as
    ``ShardedByS3Key`` does); outputs go to folders under ``scratch``, uploaded after the job.
    """
    name = request["ProcessingJobName"]
    inputs = []
    code: dict[str, Mapping[str, Any]] = {}
    for item in request.get("ProcessingInputs", []):
        s3_input = _one_s3_input(name, item)
        if item["InputName"] in (contract.CODE_INPUT, contract.ENTRYPOINT_INPUT):
            code[item["InputName"]] = s3_input
            continue
        folder = scratch / "inputs" / item["InputName"]
        folder.mkdir(parents=True)
        download_prefix(s3, s3_input["S3Uri"], folder)
        inputs.append(
            contract.ProcessingInput(
                item["InputName"],
                str(folder),
                local_path=s3_input["LocalPath"],
                distribution=s3_input.get("S3DataDistributionType", "FullyReplicated"),
            )
        )
    expected_paths = {
        contract.CODE_INPUT: str(contract.code_path()),
        contract.ENTRYPOINT_INPUT: str(contract.entrypoint_path()),
    }
    for input_name, path in expected_paths.items():
        if input_name not in code or code[input_name]["LocalPath"] != path:
            raise JobFailedError(name, f"no input {input_name!r} at {path}, as the SDK sends it")
    runproc = _fetch_object(
        s3, code[contract.ENTRYPOINT_INPUT]["S3Uri"], scratch / "uploaded" / contract.RUNPROC_SCRIPT
    ).read_text()
    program = _RUNPROC_PROGRAM.search(runproc)
    entry_point = program.group("entry_point") if program else ""
    if runproc != contract.runproc_script(entry_point):
        raise JobFailedError(name, "runproc.sh is not the one the SDK's FrameworkProcessor writes")
    source_dir = _unpack_code(s3, code[contract.CODE_INPUT]["S3Uri"], scratch, name)
    outputs = []
    uris = {}
    for item in request.get("ProcessingOutputConfig", {}).get("Outputs", []):
        outputs.append(
            contract.ProcessingOutput(
                item["OutputName"],
                local_path=item["S3Output"]["LocalPath"],
                destination=str(scratch / "outputs" / item["OutputName"]),
            )
        )
        uris[item["OutputName"]] = item["S3Output"]["S3Uri"]
    application = request["AppSpecification"]
    spec = contract.ProcessingJobSpec(
        job_name=name,
        source_dir=str(source_dir),
        entry_point=entry_point,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        arguments=tuple(application.get("ContainerArguments", ())),
        environment=dict(request.get("Environment", {})),
        container_entrypoint=tuple(application.get("ContainerEntrypoint", ())),
        instance_count=request["ProcessingResources"]["ClusterConfig"]["InstanceCount"],
    )
    return spec, uris


def run_processing_job(s3: Any, request: Mapping[str, Any], log: LogSink) -> None:
    """Run a CreateProcessingJob request to the end; raises ``JobFailedError`` as the job fails."""
    with tempfile.TemporaryDirectory(prefix="moto-processing-") as temporary:
        scratch = Path(temporary)
        spec, uris = processing_spec(s3, request, scratch)
        LocalProcessor(output_root=scratch / "default-outputs").process(spec, log=log)
        for output in spec.outputs:
            upload_folder(s3, Path(output.destination), uris[output.name])


def _training_source(s3: Any, request: Mapping[str, Any], scratch: Path) -> tuple[Path, str]:
    """The script's folder and name, from ``sagemaker_submit_directory`` and ``sagemaker_program``."""
    name = request["TrainingJobName"]
    hyperparameters = request.get("HyperParameters", {})
    try:
        program = json.loads(hyperparameters["sagemaker_program"])
        submit_directory = json.loads(hyperparameters["sagemaker_submit_directory"])
    except KeyError as missing:
        raise JobFailedError(
            name, f"no hyperparameter {missing}: the container finds no script"
        ) from None
    if submit_directory.startswith("/opt/ml/input/data/"):
        # Network isolation: the code arrives as a channel, at that path.
        channel = submit_directory.removeprefix("/opt/ml/input/data/").split("/")[0]
        uris = {
            c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
            for c in request["InputDataConfig"]
        }
        submit_directory = uris[channel]
    return _unpack_code(s3, submit_directory, scratch, name), program


def run_training_job(s3: Any, request: Mapping[str, Any], log: LogSink) -> TrainingResult:
    """Run a CreateTrainingJob request; ``model.tar.gz`` (and ``output.tar.gz``) land where
    SageMaker puts them, ``<S3OutputPath>/<job>/output/``. Raises ``JobFailedError`` as it fails."""
    name = request["TrainingJobName"]
    if request["ResourceConfig"].get("InstanceCount", 1) != 1:
        raise JobFailedError(name, "the stand-in runs training on one host only")
    with tempfile.TemporaryDirectory(prefix="moto-training-") as temporary:
        scratch = Path(temporary)
        source_dir, program = _training_source(s3, request, scratch)
        channels = {}
        for channel in request.get("InputDataConfig", []):
            folder = scratch / "channels" / channel["ChannelName"]
            download_prefix(s3, channel["DataSource"]["S3DataSource"]["S3Uri"], folder)
            channels[channel["ChannelName"]] = str(folder)
        spec = TrainingJobSpec(
            job_name=name,
            source_dir=str(source_dir),
            entry_point=program,
            channels=channels,
            hyperparameters={
                key: json.loads(value)
                for key, value in request.get("HyperParameters", {}).items()
                if not key.startswith("sagemaker_")
            },
            output_location=str(scratch / "output"),
            metric_definitions=tuple(
                MetricDefinition(item["Name"], item["Regex"])
                for item in request["AlgorithmSpecification"].get("MetricDefinitions", [])
            ),
            environment=dict(request.get("Environment", {})),
            content_types={
                c["ChannelName"]: c["ContentType"]
                for c in request.get("InputDataConfig", [])
                if c.get("ContentType")
            },
        )
        result = LocalTrainer().train(spec, log=log)
        bucket, prefix = split_uri(request["OutputDataConfig"]["S3OutputPath"])
        artifacts = {
            MODEL_ARCHIVE: result.model_artifact,
            OUTPUT_ARCHIVE: result.output_data_artifact,
        }
        for archive, path in artifacts.items():
            if path:
                key = "/".join(filter(None, [prefix.rstrip("/"), name, "output", archive]))
                s3.upload_file(path, bucket, key)
        return result
