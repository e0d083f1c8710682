"""Flywheel's own pipelines are built from the public components and nothing else.

So a user composing ``flywheel.components`` has every building block Flywheel itself uses. A task
is matched to a public component by the program it runs (its executor's command and arguments,
which embed the component function's source), not by its name, so a private component that
borrows a public name is still caught.
"""

# No ``from __future__ import annotations``: KFP reads the components' annotations as types.
import json

import pytest
from google.protobuf import json_format
from kfp import dsl
from kfp.dsl.graph_component import GraphComponent

from flywheel.pipelines.catalog import PIPELINES
from flywheel.pipelines.compile import public_components

from .pipeline_parts import prepare_task


def _program(executor: dict) -> str:
    # The image and resources may be set per task (the EKS pipeline's GPU train task); the
    # program may not. An importer or other non-container executor matches no component.
    container = executor.get("container")
    if container is None:
        return json.dumps(executor, sort_keys=True)
    return json.dumps([container.get("command"), container.get("args")])


def _programs(component) -> dict[str, str]:
    """Executor label -> the program it runs, for every executor, nested pipelines included."""
    spec = json_format.MessageToDict(component.pipeline_spec)
    return {
        label: _program(executor) for label, executor in spec["deploymentSpec"]["executors"].items()
    }


PUBLIC_PROGRAMS = {
    program: name
    for name, component in public_components().items()
    for program in _programs(component).values()
}


def foreign_tasks(pipeline: GraphComponent) -> list[str]:
    """The executors of ``pipeline`` (nested pipelines included) that run no public component."""
    return sorted(
        label for label, program in _programs(pipeline).items() if program not in PUBLIC_PROGRAMS
    )


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_shipped_pipeline_runs_only_public_components(name: str) -> None:
    pipeline = PIPELINES[name]
    assert _programs(pipeline), "the pipeline has no executors to check"
    assert foreign_tasks(pipeline) == []


@dsl.component(base_image="python:3.11")
def evaluate_model_privately(data: dsl.Input[dsl.Dataset], metrics: dsl.Output[dsl.Metrics]):
    """A private step that a shipped pipeline must not use."""


def test_a_private_component_inside_a_pipeline_is_caught() -> None:
    @dsl.pipeline
    def with_a_private_step(workload: str = "builtin:qsar"):
        prepared = prepare_task(workload)
        evaluate_model_privately(data=prepared.outputs["test"])

    assert foreign_tasks(with_a_private_step) == ["exec-evaluate-model-privately"]


def test_a_private_component_under_a_public_name_is_caught() -> None:
    @dsl.component(base_image="python:3.11")
    def evaluate_model(test: dsl.Input[dsl.Dataset], metrics: dsl.Output[dsl.Metrics]):
        """Borrows the public component's name, not its program."""

    @dsl.pipeline
    def shadowed(workload: str = "builtin:qsar"):
        prepared = prepare_task(workload)
        evaluate_model(test=prepared.outputs["test"])

    assert foreign_tasks(shadowed) == ["exec-evaluate-model"]


def test_an_importer_is_not_a_public_component() -> None:
    @dsl.pipeline
    def imports(model_uri: str = "file:///model.tar.gz"):
        dsl.importer(artifact_uri=model_uri, artifact_class=dsl.Model)

    assert foreign_tasks(imports) == ["exec-importer"]


def test_a_public_component_inside_a_user_pipeline_is_recognised() -> None:
    @dsl.pipeline
    def public_only(workload: str = "builtin:qsar"):
        prepare_task(workload)

    assert list(_programs(public_only)) == ["exec-prepare-data"]
    assert foreign_tasks(public_only) == []
