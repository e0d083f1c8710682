"""The training pipeline: prepare data, train, evaluate, register, and promote through a gate.

A training-only workload (``serving: false`` and no evaluation script) trains, registers the
model as a candidate with no metrics, and stops: ``plan_training`` says which shape runs.

Every parameter has a default that runs the QSAR example, so the pipeline runs as-is from the
Kubeflow UI and from ``flywheel run training``.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import PipelineTask
from kfp.dsl.graph_component import GraphComponent
from kfp.dsl.pipeline_channel import PipelineChannel

from flywheel.components import (
    decide_promotion,
    evaluate_model,
    plan_training,
    prepare_data,
    promote_model,
    register_model,
    score_champion,
    train_model,
)
from flywheel.components.compute.eks import Placement
from flywheel.components.compute.eks.apply import apply_placement
from flywheel.components.images import GPU_RUNTIME_IMAGE
from flywheel.pipelines.defaults import (
    DEFAULT_REGISTRY,
    DEFAULT_SOURCE,
    DEFAULT_WORKLOAD,
    GPU_WORKLOAD,
)


class TrainingOutputs(NamedTuple):
    version: int


def build_training_pipeline(
    *,
    name: str = "flywheel-training",
    workload: str = DEFAULT_WORKLOAD,
    compute: str = "local",
    compute_config: dict[str, Any] | None = None,
    place_training: Callable[[PipelineTask], PipelineTask] = lambda task: task,
    cache_registry_steps: bool = False,
) -> GraphComponent:
    """The training pipeline with these compute defaults, ``place_training`` set on the train task.

    A backend that trains in the task pod itself (EKS GPU) needs resources and scheduling on that
    one task, set when the pipeline is compiled; the other steps keep ordinary pods.

    The registry steps run every time, unless ``cache_registry_steps``: then they are cached by
    the ``registry_state`` argument, which the local CLI computes (``pipelines.registry_state``);
    on a cluster nothing computes it, so the compiled pipelines never cache them.
    """
    default_workload, default_compute = workload, compute
    default_config = dict(compute_config or {})

    @dsl.pipeline(
        name=name,
        description="Train, evaluate and register a model; promote it if it beats the champion.",
    )
    def training_pipeline(
        workload: str = default_workload,
        source: str = DEFAULT_SOURCE,
        compute: str = default_compute,
        compute_config: dict = default_config,
        hyperparameters: dict = {},  # noqa: B006 - KFP pipeline defaults are compiled, never mutated
        channels: dict = {},  # noqa: B006
        registry: str = DEFAULT_REGISTRY,
        model_name: str = "",
        batch_count: int = 8,
        training_batches: int = 3,
        test_fraction: float = 0.2,
        seed: int = 7,
        order_by: str = "",
        margin: float = 0.0,
        source_fingerprint: str = "",
        code_fingerprint: str = "",
        registry_state: str = "",
        tracking_uri: str = "",
    ) -> TrainingOutputs:
        prepared = prepare_data(
            source=source,
            workload=workload,
            batch_count=batch_count,
            training_batches=training_batches,
            test_fraction=test_fraction,
            seed=seed,
            order_by=order_by,
            source_fingerprint=source_fingerprint,
            compute=compute,
            compute_config=compute_config,
            code_fingerprint=code_fingerprint,
        ).set_display_name("prepare data")
        trained = train_model(
            workload=workload,
            compute=compute,
            compute_config=compute_config,
            hyperparameters=hyperparameters,
            code_fingerprint=code_fingerprint,
            train=prepared.outputs["train"],
            test=prepared.outputs["test"],
            channels=channels,
            tracking_uri=tracking_uri,
        ).set_display_name("train")
        place_training(trained)

        def register(**scores: PipelineChannel) -> PipelineTask:
            """The register task, with the scores a branch has (none when training only)."""
            return (
                register_model(
                    registry=registry,
                    model_name=model_name,
                    workload=workload,
                    run_id=run_id,
                    run_name=run_name,
                    registry_state=registry_state,
                    training_batches=training_batches,
                    model=trained.outputs["model"],
                    train=prepared.outputs["train"],
                    test=prepared.outputs["test"],
                    **scores,
                )
                .set_display_name("register")
                .set_caching_options(cache_registry_steps)
            )

        # A training-only workload (nothing scores its model) registers a candidate and stops.
        plan = plan_training(workload=workload, code_fingerprint=code_fingerprint).set_display_name(
            "plan"
        )
        # A run's id would key the cache to the run; cached, the inputs identify it.
        run_id = "" if cache_registry_steps else dsl.PIPELINE_JOB_ID_PLACEHOLDER
        run_name = "" if cache_registry_steps else dsl.PIPELINE_JOB_NAME_PLACEHOLDER
        with dsl.If(plan.output == True, name="scored"):  # noqa: E712 - a KFP condition
            evaluated = evaluate_model(
                workload=workload,
                compute=compute,
                compute_config=compute_config,
                model=trained.outputs["model"],
                test=prepared.outputs["test"],
            ).set_display_name("evaluate")
            champion = (
                score_champion(
                    registry=registry,
                    model_name=model_name,
                    workload=workload,
                    compute=compute,
                    compute_config=compute_config,
                    registry_state=registry_state,
                    test=prepared.outputs["test"],
                )
                .set_display_name("score champion")
                .set_caching_options(cache_registry_steps)
            )
            registered = register(
                metrics=evaluated.outputs["metrics"], champion=champion.outputs["metrics"]
            )
            gate = (
                decide_promotion(
                    workload=workload,
                    version=registered.outputs["version"],
                    sha256=registered.outputs["sha256"],
                    margin=margin,
                    registry_state=registry_state,
                    candidate=evaluated.outputs["metrics"],
                    champion=champion.outputs["metrics"],
                )
                .set_display_name("quality gate")
                .set_caching_options(cache_registry_steps)
            )
            with dsl.If(gate.output == True, name="beats-champion"):  # noqa: E712 - a KFP condition
                promote_model(
                    registry=registry,
                    model_name=model_name,
                    workload=workload,
                    version=registered.outputs["version"],
                    registry_state=registry_state,
                    champion=champion.outputs["metrics"],
                ).set_display_name("promote").set_caching_options(cache_registry_steps)
        with dsl.Else(name="training-only"):
            registered_only = register()
        # Whether the gate promoted is the quality gate's output (and the registry's stage); a
        # pipeline output must come from every branch, and the training-only one has no gate.
        return TrainingOutputs(
            version=dsl.OneOf(registered.outputs["version"], registered_only.outputs["version"])
        )

    return training_pipeline


training_pipeline = build_training_pipeline()
# What ``flywheel run training`` runs: the same pipeline, with the registry steps cached by state.
local_training_pipeline = build_training_pipeline(cache_registry_steps=True)


def eks_training_pipeline(
    placement: Placement, *, cache_registry_steps: bool = False
) -> GraphComponent:
    """The training pipeline that trains the PyTorch example on EKS GPU nodes, as ``placement`` says."""
    return build_training_pipeline(
        cache_registry_steps=cache_registry_steps,
        name="flywheel-training-eks-gpu",
        workload=GPU_WORKLOAD,
        compute="eks-gpu",
        # The pod needs only the GPU count (SM_NUM_GPUS, torchrun); the rest is compiled into the
        # task. One key also keeps the compiled file stable: KFP writes dicts in protobuf map order.
        compute_config={"gpus": placement.gpus},
        place_training=lambda task: apply_placement(task, placement).set_container_image(
            GPU_RUNTIME_IMAGE
        ),
    )
