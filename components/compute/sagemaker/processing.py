"""A SageMaker processing job for a :class:`ProcessingJobSpec`, under the processing contract.

The code travels as the SageMaker Python SDK's ``FrameworkProcessor`` sends it: the user's inputs,
then ``sourcedir.tar.gz`` in the input ``code`` and ``runproc.sh`` in the input ``entrypoint``,
with ``ContainerEntrypoint`` running that script. A script written for the SDK's processors runs
here unchanged, and the local backend lays out the same folders.

After the job, :func:`collect_outputs` says where each output now is, and refuses an output the
script left empty. A failed job's reason carries what the container said as it exited
(``JobType.failure_reason``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flywheel.components.compute.sagemaker.jobs import PROCESSING
from flywheel.components.compute.sagemaker.s3 import S3Uri, Stager, is_s3, parse_s3_uri
from flywheel.components.compute.sagemaker.specs import SageMakerConfig
from flywheel.components.contract.processing import (
    CODE_INPUT,
    ENTRYPOINT_INPUT,
    ProcessingJobSpec,
    code_path,
    container_entrypoint,
    entrypoint_path,
)
from flywheel.components.errors import JobFailedError

OUTPUT_FOLDER = "processing"


def _s3_input(name: str, uri: S3Uri, local_path: str, distribution: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": str(uri),
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": distribution,
            "S3CompressionType": "None",
        },
    }


def _s3_output(name: str, uri: S3Uri | None, local_path: str) -> dict[str, Any]:
    return {
        "OutputName": name,
        "S3Output": {
            "S3Uri": "" if uri is None else str(uri),
            "LocalPath": local_path,
            "S3UploadMode": "EndOfJob",
        },
    }


def default_output(config: SageMakerConfig, job_name: str, output_name: str) -> S3Uri:
    """Where an output with no destination goes: under the job's name, so two jobs never mix.

    The attempts of one job (``-a2`` after a failure) share it, as they share the request.
    """
    return config.s3_prefix.child(OUTPUT_FOLDER, job_name, output_name)


def processing_request(
    spec: ProcessingJobSpec,
    config: SageMakerConfig,
    *,
    image: str,
    code: S3Uri,
    entrypoint: S3Uri,
    inputs: Mapping[str, S3Uri],
    outputs: Mapping[str, S3Uri | None],
) -> dict[str, Any]:
    """The CreateProcessingJob request, named from a digest of everything else in it.

    ``inputs`` and ``outputs`` map each of the spec's names to its S3 prefix; an output mapped to
    None goes to :func:`default_output`, which follows from the name, so it is filled in after the
    name is known (the digest covers everything that decides it). Refuses, naming the field,
    whatever the service would refuse, before any call.
    """
    cluster: dict[str, Any] = {
        "InstanceCount": spec.instance_count,
        "InstanceType": config.processing_instance_type,
        "VolumeSizeInGB": config.volume_size_gb,
    }
    if config.volume_kms_key_id:
        cluster["VolumeKmsKeyId"] = config.volume_kms_key_id
    application: dict[str, Any] = {
        "ImageUri": image,
        "ContainerEntrypoint": container_entrypoint(spec),
    }
    if spec.arguments:
        # The service takes 1-100 arguments: none at all means leaving the member out.
        application["ContainerArguments"] = list(spec.arguments)
    network: dict[str, Any] = {"EnableNetworkIsolation": config.network_isolation}
    if config.vpc_config:
        network["VpcConfig"] = config.vpc_config
    request: dict[str, Any] = {
        "ProcessingInputs": [
            *(
                _s3_input(item.name, inputs[item.name], str(item.path), item.distribution)
                for item in spec.inputs
            ),
            _s3_input(CODE_INPUT, code, str(code_path()), "FullyReplicated"),
            _s3_input(ENTRYPOINT_INPUT, entrypoint, str(entrypoint_path()), "FullyReplicated"),
        ],
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": config.max_run_seconds},
        "AppSpecification": application,
        "Environment": {**config.environment, **spec.environment},
        "NetworkConfig": network,
        "RoleArn": config.role_arn,
        "Tags": config.tag_list({"flywheel:job": spec.job_name}),
    }
    if spec.outputs:
        output_config: dict[str, Any] = {
            "Outputs": [
                _s3_output(item.name, outputs[item.name], str(item.path)) for item in spec.outputs
            ]
        }
        if config.output_kms_key_id:
            output_config["KmsKeyId"] = config.output_kms_key_id
        request["ProcessingOutputConfig"] = output_config

    def place_default_outputs(name: str, named: dict[str, Any]) -> None:
        for output in named.get("ProcessingOutputConfig", {}).get("Outputs", []):
            if not output["S3Output"]["S3Uri"]:
                uri = default_output(config, name, output["OutputName"])
                output["S3Output"]["S3Uri"] = str(uri)

    return PROCESSING.named(spec.job_name, "process", request, complete=place_default_outputs)


def output_prefixes(request: Mapping[str, Any]) -> dict[str, str]:
    """Each output's S3 prefix, as the request gives it."""
    return {
        output["OutputName"]: output["S3Output"]["S3Uri"]
        for output in request.get("ProcessingOutputConfig", {}).get("Outputs", [])
    }


def _holds_objects(s3: Any, uri: S3Uri) -> bool:
    listing = s3.list_objects_v2(Bucket=uri.bucket, Prefix=uri.key.rstrip("/") + "/", MaxKeys=1)
    return bool(listing.get("KeyCount") or listing.get("Contents"))


def collect_outputs(
    s3: Any, stager: Stager, spec: ProcessingJobSpec, name: str, prefixes: Mapping[str, str]
) -> dict[str, str]:
    """Where each output now is: its local destination, fetched there, or its S3 prefix.

    An output the script left empty fails the step, naming it: a later step reading it would
    otherwise fail far from the cause.
    """
    collected: dict[str, str] = {}
    for item in spec.outputs:
        uri = parse_s3_uri(f"processing.outputs.{item.name}", prefixes[item.name])
        if item.destination and not is_s3(item.destination):
            written = bool(stager.download_prefix(uri, Path(item.destination)))
            collected[item.name] = item.destination
        else:
            written = _holds_objects(s3, uri)
            collected[item.name] = str(uri)
        if not written:
            raise JobFailedError(
                name,
                f"completed, but the script wrote nothing to output {item.name!r} "
                f"({item.path}), so {uri} is empty",
            )
    return collected
