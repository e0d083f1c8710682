"""``flywheel submit``: start a pipeline run on a Kubeflow Pipelines install.

Parameters are checked against the pipeline's own inputs (names and types) before anything is
sent. What runs is exactly this checkout's pipeline: the PipelineVersion its code compiles to
(``<pipeline>-<hash of the spec>``) when KFP has it, so the run is linked to that version, else
the compiled spec sent inline. Never KFP's newest version, which may be other code.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import kfp
import kfp_server_api
import urllib3
from kfp.dsl.graph_component import GraphComponent
from kfp.pipeline_spec import pipeline_spec_pb2

from flywheel.components.errors import FlywheelError, InvalidSpecError
from flywheel.operators.kfp_runs import connect, equals_filter
from flywheel.pipelines import kubernetes_manifests
from flywheel.pipelines.catalog import PIPELINES
from flywheel.pipelines.preflight import check_processing_tasks, check_tuning_rounds


class KfpApiError(FlywheelError):
    """The KFP API could not be reached, or refused the request; the message names the host."""


def _root_cause(error: BaseException) -> str:
    """The socket's own words (``Connection refused``), not urllib3's retry bookkeeping."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__ or getattr(seen, "reason", None)
        if not isinstance(seen, BaseException):
            break
    return type(error).__name__


@contextlib.contextmanager
def talking_to(host: str) -> Iterator[None]:
    """Turn a transport failure or an HTTP error from the KFP API into one line naming ``host``."""
    where = urlsplit(host).netloc or host
    try:
        yield
    except urllib3.exceptions.HTTPError as error:
        raise KfpApiError(
            f"cannot reach the KFP API at {where}: {_root_cause(error)} (--host {host})"
        ) from None
    except kfp_server_api.ApiException as error:
        raise KfpApiError(
            f"the KFP API at {where} answered {error.status} {error.reason}"
        ) from None


@dataclass(frozen=True)
class SubmittedRun:
    run_id: str
    url: str
    version: str | None  # the registered PipelineVersion it runs; None: the spec went inline
    workload: str = ""


def _registered_version(
    client: kfp.Client, pipeline: GraphComponent
) -> tuple[str, str, str] | None:
    """(pipeline id, version id, version name) of the version this checkout compiles to."""
    _, version_doc = kubernetes_manifests.current_documents(pipeline)
    version = version_doc["metadata"]["name"]
    pipeline_id = client.get_pipeline_id(version_doc["spec"]["pipelineName"])
    if pipeline_id is None:
        return None
    found = client.list_pipeline_versions(
        pipeline_id, page_size=1, filter=equals_filter("display_name", version)
    ).pipeline_versions
    return (pipeline_id, found[0].pipeline_version_id, version) if found else None


def _coerce(name: str, kind: str, text: str) -> Any:
    field = f"--param {name}"
    try:
        if kind == "NUMBER_INTEGER":
            return int(text)
        if kind == "NUMBER_DOUBLE":
            return float(text)
        if kind == "BOOLEAN":
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        if kind in ("STRUCT", "LIST"):
            value = json.loads(text)
            expected = dict if kind == "STRUCT" else list
            if not isinstance(value, expected):
                raise ValueError(text)
            return value
    except ValueError:
        raise InvalidSpecError(
            field, f"expected {kind.lower().replace('_', ' ')}, got {text!r}"
        ) from None
    return text


def pipeline_arguments(
    pipeline: GraphComponent, pairs: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """``NAME=VALUE`` pairs typed by the pipeline's declared inputs; unknown names are refused."""
    inputs = pipeline.pipeline_spec.root.input_definitions.parameters
    arguments = {}
    for name, text in pairs:
        if name not in inputs:
            raise InvalidSpecError(
                f"--param {name}",
                f"not a parameter of the pipeline; allowed: {', '.join(sorted(inputs))}",
            )
        kind = pipeline_spec_pb2.ParameterType.ParameterTypeEnum.Name(inputs[name].parameter_type)
        arguments[name] = _coerce(name, kind, text)
    return arguments


def workload_argument(
    pipeline: GraphComponent,
    workload: str,
    bundle_to: str,
    upload: Callable[[str, str], str],
) -> str:
    """The ``workload`` parameter for ``workload``: a local one is uploaded as a code bundle first.

    A built-in or a bundle already in S3 is passed as it is; everything is checked before upload.
    """
    from flywheel.components.compute.sagemaker.s3 import parse_s3_uri
    from flywheel.components.contract.workload import BUILTIN_PREFIX, load_workload
    from flywheel.components.data.bundles import is_bundle

    if "workload" not in pipeline.pipeline_spec.root.input_definitions.parameters:
        raise InvalidSpecError("--workload", "this pipeline takes no workload")
    if workload.startswith(BUILTIN_PREFIX) or is_bundle(workload):
        return workload
    load_workload(workload)
    if not bundle_to:
        raise InvalidSpecError(
            "--bundle-to",
            "a local --workload is uploaded as a code bundle: give s3://bucket/prefix",
        )
    parse_s3_uri("--bundle-to", bundle_to, allow_bucket_only=True)
    return upload(workload, bundle_to)


def submit(
    pipeline_name: str,
    *,
    host: str,
    parameters: Sequence[tuple[str, str]] = (),
    workload: str = "",
    bundle_to: str = "",
    upload: Callable[[str, str], str] = lambda workload, to: _upload(workload, to),
    experiment: str = "flywheel",
    run_name: str = "",
    service_account: str = "",
    namespace: str = "",
    client_factory: Callable[[str, str], kfp.Client] = lambda host, namespace: connect(
        host, namespace
    ),
) -> SubmittedRun:
    """Check, then create one run of ``pipeline_name`` on the KFP API at ``host``."""
    pipeline = PIPELINES.get(pipeline_name)
    if pipeline is None:
        raise InvalidSpecError(
            "pipeline", f"{pipeline_name!r} is not one of {', '.join(PIPELINES)}"
        )
    arguments = pipeline_arguments(pipeline, parameters)
    check_processing_tasks(pipeline)
    check_tuning_rounds(pipeline, {**arguments, **({"workload": workload} if workload else {})})
    if workload:
        if "workload" in arguments:
            raise InvalidSpecError("--workload", "give the workload once, not also as --param")
        arguments["workload"] = workload_argument(pipeline, workload, bundle_to, upload)
    arguments.update(_fingerprint(pipeline, arguments))
    arguments.update(_tracking(pipeline, arguments))
    with talking_to(host):
        client = client_factory(host, namespace)
        registered = _registered_version(client, pipeline)
        if registered is None:
            run_id = client.create_run_from_pipeline_func(
                pipeline,
                arguments=arguments,
                run_name=run_name or None,
                experiment_name=experiment,
                namespace=namespace or None,
                service_account=service_account or None,
            ).run_id
        else:
            pipeline_id, version_id, version = registered
            experiment_id = client.create_experiment(experiment, namespace=namespace or None)
            run_id = client.run_pipeline(
                experiment_id=experiment_id.experiment_id,
                job_name=run_name or f"{version} {datetime.now(UTC):%Y-%m-%d %H-%M-%S}",
                params=arguments,
                pipeline_id=pipeline_id,
                version_id=version_id,
                service_account=service_account or None,
            ).run_id
    return SubmittedRun(
        run_id=run_id,
        url=f"{host.rstrip('/')}/#/runs/details/{run_id}",
        version=registered[2] if registered else None,
        workload=arguments.get("workload", ""),
    )


def _fingerprint(pipeline: GraphComponent, arguments: dict[str, Any]) -> dict[str, str]:
    """``source_fingerprint`` for an S3 source, from its metadata, unless one was given.

    The cluster's cache keys on parameters: without it, new data under the same key would be
    served the old prepared batches.
    """
    from flywheel.components.data.tables import S3_PREFIX, source_fingerprint

    source = str(arguments.get("source", ""))
    inputs = pipeline.pipeline_spec.root.input_definitions.parameters
    wanted = "source_fingerprint" in inputs and "source_fingerprint" not in arguments
    if not (wanted and source.startswith(S3_PREFIX)):
        return {}
    return {"source_fingerprint": source_fingerprint(source)}


def _tracking(pipeline: GraphComponent, arguments: dict[str, Any]) -> dict[str, str]:
    """``tracking_uri`` for the run's train tasks: ``--param tracking_uri``, else this shell's
    ``MLFLOW_TRACKING_URI`` (unless ``FLYWHEEL_TRACKING=off``).

    A task pod has no ``MLFLOW_TRACKING_URI`` of its own, so without this nothing a cluster run
    trains is tracked. It must be a store the pod can reach: a server, a database or SageMaker's
    managed MLflow, not a file on this machine.
    """
    from flywheel.components.tracking import (
        TRACKING_URI_VARIABLE,
        check_tracking_uri,
        tracking_switched_off,
    )

    inputs = pipeline.pipeline_spec.root.input_definitions.parameters
    if "tracking_uri" not in inputs:
        return {}
    given = str(arguments.get("tracking_uri") or "")
    field = "--param tracking_uri" if given else TRACKING_URI_VARIABLE
    uri = given or ("" if tracking_switched_off() else os.environ.get(TRACKING_URI_VARIABLE, ""))
    if not uri:
        return {}
    try:
        check_tracking_uri(uri)
    except InvalidSpecError as error:
        raise InvalidSpecError(field, error.problem) from None
    if uri.split(":", 1)[0] in ("sqlite", "file"):
        raise InvalidSpecError(
            field,
            f"{uri} is a store on this machine, which a task pod cannot reach; use a tracking "
            "server (http(s)://...), a database, or a SageMaker MLflow tracking server ARN",
        )
    return {"tracking_uri": uri}


def _upload(workload: str, destination: str) -> str:
    from flywheel.components.data.bundles import upload_bundle

    return upload_bundle(workload, destination)
