"""``flywheel submit``: start a pipeline run on a Kubeflow Pipelines install.

Parameters are checked against the pipeline's own inputs (names and types) before anything is
sent. What runs is exactly this checkout's pipeline: the PipelineVersion its code compiles to
(``<pipeline>-<hash of the spec>``) when KFP has it, so the run is linked to that version, else
the compiled spec sent inline. Never KFP's newest version, which may be other code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kfp
from kfp.dsl.graph_component import GraphComponent
from kfp.pipeline_spec import pipeline_spec_pb2

from flywheel.components.errors import InvalidSpecError
from flywheel.operators.kfp_runs import connect, equals_filter
from flywheel.pipelines import kubernetes_manifests
from flywheel.pipelines.catalog import PIPELINES


@dataclass(frozen=True)
class SubmittedRun:
    run_id: str
    url: str
    version: str | None  # the registered PipelineVersion it runs; None: the spec went inline


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


def submit(
    pipeline_name: str,
    *,
    host: str,
    parameters: Sequence[tuple[str, str]] = (),
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
    )
