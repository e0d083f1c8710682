"""The training pipeline: prepare data, train, evaluate, register, and promote through a gate.

Every parameter has a default that runs the QSAR example, so the pipeline runs as-is from the
Kubeflow UI and from ``flywheel run training``.
"""

from typing import NamedTuple

from kfp import dsl

from components import tasks

DEFAULT_WORKLOAD = "examples/qsar/workload.yaml"
DEFAULT_SOURCE = "builtin:chembl-CHEMBL2321810"
DEFAULT_REGISTRY = ".flywheel/registry"


class TrainingOutputs(NamedTuple):
    version: int
    promoted: bool


@dsl.pipeline(
    name="flywheel-training",
    description="Train, evaluate and register a model; promote it if it beats the champion.",
)
def training_pipeline(
    workload: str = DEFAULT_WORKLOAD,
    source: str = DEFAULT_SOURCE,
    compute: str = "local",
    compute_config: dict = {},  # noqa: B006
    hyperparameters: dict = {},  # noqa: B006 - KFP pipeline defaults are compiled, never mutated
    registry: str = DEFAULT_REGISTRY,
    model_name: str = "",
    batch_count: int = 5,
    training_batches: int = 2,
    test_fraction: float = 0.2,
    seed: int = 7,
    order_by: str = "",
    margin: float = 0.0,
    source_fingerprint: str = "",
    code_fingerprint: str = "",
) -> TrainingOutputs:
    prepared = tasks.prepare_data(
        source=source,
        workload=workload,
        batch_count=batch_count,
        training_batches=training_batches,
        test_fraction=test_fraction,
        seed=seed,
        order_by=order_by,
        source_fingerprint=source_fingerprint,
    ).set_display_name("prepare data")
    trained = tasks.train_model(
        workload=workload,
        compute=compute,
        compute_config=compute_config,
        hyperparameters=hyperparameters,
        code_fingerprint=code_fingerprint,
        train=prepared.outputs["train"],
        test=prepared.outputs["test"],
    ).set_display_name("train")
    evaluated = tasks.evaluate_model(
        workload=workload,
        compute=compute,
        compute_config=compute_config,
        model=trained.outputs["model"],
        test=prepared.outputs["test"],
    ).set_display_name("evaluate")
    registered = (
        tasks.register_model(
            registry=registry,
            model_name=model_name,
            workload=workload,
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            model=trained.outputs["model"],
            metrics=evaluated.outputs["metrics"],
            train=prepared.outputs["train"],
            test=prepared.outputs["test"],
        )
        .set_display_name("register")
        .set_caching_options(False)
    )
    gate = (
        tasks.decide_promotion(
            registry=registry,
            model_name=model_name,
            workload=workload,
            version=registered.outputs["version"],
            margin=margin,
        )
        .set_display_name("quality gate")
        .set_caching_options(False)
    )
    with dsl.If(gate.output == True, name="beats-champion"):  # noqa: E712 - a KFP condition
        tasks.promote_model(
            registry=registry,
            model_name=model_name,
            workload=workload,
            version=registered.outputs["version"],
            margin=margin,
        ).set_display_name("promote").set_caching_options(False)
    return TrainingOutputs(version=registered.outputs["version"], promoted=gate.output)
