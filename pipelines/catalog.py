"""Every pipeline Flywheel ships, by the name the CLI and the compiled files use."""

from __future__ import annotations

from kfp.dsl.graph_component import GraphComponent

from flywheel.components.eks import DEFAULT_PLACEMENT_FILE, load_placement
from flywheel.pipelines.evaluation import evaluation_pipeline
from flywheel.pipelines.training import eks_training_pipeline, training_pipeline

PIPELINES: dict[str, GraphComponent] = {
    "training": training_pipeline,
    # The same pipeline with the train task placed on EKS GPU nodes by the default placement.
    "training-eks-gpu": eks_training_pipeline(load_placement(DEFAULT_PLACEMENT_FILE)),
    "evaluation": evaluation_pipeline,
}


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
