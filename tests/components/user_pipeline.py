"""Compose your own pipeline from Flywheel's components: train, evaluate, register, promote.

This is the file a user writes. It imports nothing from Flywheel but ``flywheel.components``, and
composes the components differently from Flywheel's training pipeline: there is no quality gate,
so every model that trains is registered and made the champion (a team that reviews models in
the registry, say). Run it on your machine with ``kfp.local``, or compile it for Kubeflow::

    from kfp import compiler, local
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root="runs")
    always_promote(registry="registry")
    compiler.Compiler().compile(always_promote, "always_promote.yaml")
"""

# No ``from __future__ import annotations``: KFP reads the pipeline's annotations as types.
from kfp import dsl

from flywheel.components import (
    evaluate_model,
    prepare_data,
    promote_model,
    register_model,
    score_champion,
    train_model,
)


@dsl.pipeline(
    name="always-promote",
    description="Train and evaluate a model, register it, and make it the champion: no gate.",
)
def always_promote(
    registry: str,
    workload: str = "builtin:qsar",
    source: str = "builtin:chembl-CHEMBL2321810",
    hyperparameters: dict = {},  # noqa: B006 - KFP pipeline defaults are compiled, never mutated
    batch_count: int = 4,
    training_batches: int = 1,
) -> int:
    prepared = prepare_data(
        source=source,
        workload=workload,
        batch_count=batch_count,
        training_batches=training_batches,
        test_fraction=0.2,
        seed=7,
        order_by="",
        source_fingerprint="",
    )
    trained = train_model(
        workload=workload,
        compute="local",
        compute_config={},
        hyperparameters=hyperparameters,
        code_fingerprint="",
        train=prepared.outputs["train"],
        test=prepared.outputs["test"],
    )
    evaluated = evaluate_model(
        workload=workload,
        compute="local",
        compute_config={},
        model=trained.outputs["model"],
        test=prepared.outputs["test"],
    )
    # The registry keeps the champion's scores beside the candidate's, even without a gate.
    champion = score_champion(
        registry=registry,
        model_name="",
        workload=workload,
        compute="local",
        compute_config={},
        registry_state="",
        test=prepared.outputs["test"],
    )
    registered = register_model(
        registry=registry,
        model_name="",
        workload=workload,
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        registry_state="",
        training_batches=training_batches,
        model=trained.outputs["model"],
        metrics=evaluated.outputs["metrics"],
        train=prepared.outputs["train"],
        test=prepared.outputs["test"],
        champion=champion.outputs["metrics"],
    )
    promote_model(
        registry=registry,
        model_name="",
        workload=workload,
        version=registered.outputs["version"],
        registry_state="",
        champion=champion.outputs["metrics"],
    )
    return registered.outputs["version"]
