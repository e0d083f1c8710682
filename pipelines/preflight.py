"""Check a pipeline's processing tasks before any task runs.

A ``run_processing`` task's inputs, outputs, local paths and host settings are usually constants
of the pipeline. Checked only inside the task, a typo in the evaluation step would surface after
preprocessing and training have run; checked here, against the same rules every backend applies
(``contract.processing.check_spec``), it is one line naming the task and the field, before the
first task starts. Values that arrive at run time (a pipeline parameter, another task's output)
are left to the task.

A tuning pipeline's rounds are unrolled when it is built, and its first ``suggest_trials`` task
holds them as constants: a workload whose search does not fill them is refused here too, naming
``tuning.max_jobs``, before the run is started (``check_tuning_rounds``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format

from flywheel.components.contract.processing import (
    PROCESSING_ROOT,
    ProcessingInput,
    ProcessingJobSpec,
    check_spec,
)
from flywheel.components.errors import InvalidSpecError
from flywheel.components.steps.process import parse_inputs, parse_outputs

if TYPE_CHECKING:
    from kfp.dsl.graph_component import GraphComponent

# ``run_processing``, and the ``-2``, ``-3``... KFP gives its further uses in one pipeline.
_PROCESSING_COMPONENT = re.compile(r"^comp-run-processing(-\d+)?$")
_SUGGEST_COMPONENT = re.compile(r"^comp-suggest-trials(-\d+)?$")
_ARTIFACT_DEFAULTS = {"data": f"{PROCESSING_ROOT}/input/data", "model": f"{PROCESSING_ROOT}/model"}


def _tasks(spec: Any, dag: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    for name, task in dag.tasks.items():
        component = spec.components[task.component_ref.name]
        if component.WhichOneof("implementation") == "dag":
            yield from _tasks(spec, component.dag, f"{path}{name}.")
        else:
            yield f"{path}{name}", task


def _constants(component: Any, task: Any) -> dict[str, Any]:
    """The task's parameters known before it runs: constants, else the component's defaults.

    A parameter wired at run time (a pipeline parameter, another task's output) is absent.
    """
    definitions = json_format.MessageToDict(component.input_definitions).get("parameters", {})
    inputs = json_format.MessageToDict(task.inputs).get("parameters", {})
    known = {
        name: definition["defaultValue"]
        for name, definition in definitions.items()
        if "defaultValue" in definition and name not in inputs
    }
    known.update(
        (name, value["runtimeValue"]["constant"])
        for name, value in inputs.items()
        if "constant" in value.get("runtimeValue", {})
    )
    return known


def processing_spec(component: Any, task: Any) -> ProcessingJobSpec | None:
    """What can be known of a ``run_processing`` task's job before it runs; None if too little."""
    given = _constants(component, task)
    if not {"output_names"} <= set(given) or not isinstance(given["output_names"], list):
        return None
    local_paths: Mapping[str, str] = given.get("local_paths", {})
    inputs = {
        name: {"source": value} if isinstance(value, str) else value
        for name, value in given.get("inputs", {}).items()
    }
    for name, path in local_paths.items():
        if name in inputs:
            inputs[name] = {**inputs[name], "local_path": path}
    staged = list(parse_inputs(inputs))
    for name in json_format.MessageToDict(task.inputs).get("artifacts", {}):
        if name in _ARTIFACT_DEFAULTS:
            path = local_paths.get(name, _ARTIFACT_DEFAULTS[name])
            staged.append(ProcessingInput(name, f"<{name} artifact>", path))
    instance_count = int(given.get("instance_count", 1))
    host_index = int(given.get("host_index", -1))
    return ProcessingJobSpec(
        job_name="preflight",
        source_dir="<source_dir>",
        entry_point=str(given.get("entry_point", "<entry_point>")),
        inputs=tuple(staged),
        outputs=parse_outputs({n: local_paths.get(n, "") for n in given["output_names"]}),
        arguments=tuple(str(a) for a in given.get("arguments", [])),
        environment={str(k): str(v) for k, v in given.get("environment", {}).items()},
        instance_count=instance_count,
        host_indexes=() if host_index < 0 else (host_index,),
    )


def check_processing_tasks(pipeline: GraphComponent) -> None:
    """Refuse, naming the task and the field, a processing task whose constants break the contract."""
    spec = pipeline.pipeline_spec
    for name, task in _tasks(spec, spec.root.dag):
        if not _PROCESSING_COMPONENT.match(task.component_ref.name):
            continue
        display = task.task_info.name or name
        try:
            job = processing_spec(spec.components[task.component_ref.name], task)
            if job is not None:
                check_spec(job)
        except InvalidSpecError as error:
            raise InvalidSpecError(f"{display}: {error.field}", error.problem) from None


def compiled_rounds(pipeline: GraphComponent) -> tuple[int, int] | None:
    """The rounds a tuning pipeline was built for and their size, from its first
    ``suggest_trials`` task's constants; None for a pipeline that has none."""
    spec = pipeline.pipeline_spec
    for _, task in _tasks(spec, spec.root.dag):
        if not _SUGGEST_COMPONENT.match(task.component_ref.name):
            continue
        given = _constants(spec.components[task.component_ref.name], task)
        if int(given.get("rounds", 0)) > 0:
            return int(given["rounds"]), int(given.get("round_size", 0))
    return None


def check_tuning_rounds(pipeline: GraphComponent, arguments: Mapping[str, Any]) -> None:
    """Refuse, naming ``tuning.max_jobs``, a run whose workload's search does not fill the rounds
    the tuning pipeline was built for (``tuning_rounds.check_compiled_rounds``).

    Only a workload readable here (built in, or a local file) is checked; a bundle in S3, or a
    path that exists only in the task's image, is left to the first ``suggest_trials`` task,
    which checks the same. A run on SageMaker tunes in one job and has no rounds.
    """
    from pathlib import Path

    from flywheel.components.contract.workload import BUILTIN_PREFIX, load_workload
    from flywheel.components.steps.tuning_rounds import check_compiled_rounds

    built = compiled_rounds(pipeline)
    if built is None:
        return
    defaults = {
        name: definition["defaultValue"]
        for name, definition in json_format.MessageToDict(
            pipeline.pipeline_spec.root.input_definitions
        )
        .get("parameters", {})
        .items()
        if "defaultValue" in definition
    }
    given = {**defaults, **arguments}
    workload = str(given.get("workload", ""))
    if given.get("compute") == "sagemaker":
        return
    if not workload or not (workload.startswith(BUILTIN_PREFIX) or Path(workload).exists()):
        return
    search = load_workload(workload).tuning
    if search is not None:  # none is refused by the task, naming ``tuning``
        check_compiled_rounds(search, *built)
