"""Every pipeline Flywheel ships, by the name the CLI and the compiled files use."""

from __future__ import annotations

from pathlib import Path

from kfp.dsl.graph_component import GraphComponent

from pipelines.training import training_pipeline

PIPELINES: dict[str, GraphComponent] = {"training": training_pipeline}
# Compiled IR lives in the repository so reviews show what a change does to each pipeline.
COMPILED_DIR = Path(__file__).parent / "compiled"


def task_names(pipeline: GraphComponent) -> list[str]:
    """Leaf task names in definition order, through conditions and nested pipelines."""
    spec = pipeline.pipeline_spec
    names: list[str] = []

    def walk(dag_tasks) -> None:
        for name, task in dag_tasks.items():
            component = spec.components[task.component_ref.name]
            if component.WhichOneof("implementation") == "dag":
                walk(component.dag.tasks)
            else:
                names.append(name)

    walk(spec.root.dag.tasks)
    return names
