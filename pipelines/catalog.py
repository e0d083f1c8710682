"""Every pipeline Flywheel ships, by the name the CLI and the compiled files use.

``PIPELINES`` is built on first use: building a pipeline costs a noticeable fraction of a second,
and ``flywheel run`` needs only its own, so importing this module for ``task_names`` builds none.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kfp.dsl.graph_component import GraphComponent


@functools.cache
def _pipelines() -> dict[str, GraphComponent]:
    from flywheel.components.compute.eks import DEFAULT_PLACEMENT_FILE, load_placement
    from flywheel.examples.qsar.processing_pipeline import preprocess_train_evaluate
    from flywheel.pipelines.deployment import deployment_pipeline
    from flywheel.pipelines.evaluation import evaluation_pipeline
    from flywheel.pipelines.training import eks_training_pipeline, training_pipeline
    from flywheel.pipelines.tuning import build_tuning_pipeline

    return {
        "training": training_pipeline,
        # The same pipeline with the train task placed on EKS GPU nodes by the default placement.
        "training-eks-gpu": eks_training_pipeline(load_placement(DEFAULT_PLACEMENT_FILE)),
        "evaluation": evaluation_pipeline,
        # Rounds and parallelism unrolled from builtin:qsar-tuning's search (pipelines/tuning.py).
        "tuning": build_tuning_pipeline(),
        # The example a user composes from the public components (README: "Compose your own
        # pipeline"): preprocess, train, evaluate with evaluation.json, condition, register.
        "qsar-processing": preprocess_train_evaluate,
        # The ModelDeployment operator's rollout of one stage: the public deploy_endpoint.
        "deployment": deployment_pipeline,
    }


def __getattr__(name: str) -> dict[str, GraphComponent]:
    if name == "PIPELINES":
        return _pipelines()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
