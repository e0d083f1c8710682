"""The tuning pipeline: prepare data, search the hyperparameters, and gate the winner.

On SageMaker the search is one Automatic Model Tuning job (``tune_on_sagemaker``). Elsewhere
(``local``, ``eks-gpu``) KFP is the engine: rounds of ``suggest_trials`` → one ``train_model``
task per trial in ``dsl.ParallelFor(parallelism=max_parallel_jobs)`` → ``record_trials``, the
Optuna journal handed from round to round. Either way the best trial's
model then goes through what the training pipeline does after training: evaluate, register
(its lineage naming the tuning run, the trial and its parameters), score the champion on the
same rows, and promote only if the quality gate says so.

KFP runs no loop whose length is known only at run time, so the rounds are unrolled when the
pipeline is built: ``ceil(max_jobs / max_parallel_jobs)`` of the search it is built for, and
``parallelism`` is that search's ``max_parallel_jobs``. The compiled pipeline is built for
``builtin:qsar-tuning``'s search; ``flywheel run tuning`` builds one for the workload it runs. A
workload whose search needs another number of rounds than were built is refused in one line
naming ``tuning.max_jobs``: by ``flywheel submit`` and ``flywheel run pipeline`` before the run
starts (``pipelines.preflight``), and by the first ``suggest_trials``, which is given the built
rounds as constants, before any trial runs. More rounds would silently stop at the last one
built; fewer would leave a round with no trial, and kfp.local fails the ``dsl.Collected`` of an
empty ``dsl.ParallelFor``.
"""

import math
from collections.abc import Callable
from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import PipelineTask
from kfp.dsl.graph_component import GraphComponent
from kfp.dsl.pipeline_channel import PipelineChannel

from flywheel.components import (
    decide_promotion,
    evaluate_model,
    prepare_data,
    promote_model,
    record_trials,
    register_model,
    score_champion,
    suggest_trials,
    train_model,
    tune_on_sagemaker,
)
from flywheel.components.contract.tuning import TuningSpec
from flywheel.pipelines.defaults import DEFAULT_REGISTRY, DEFAULT_SOURCE, TUNING_WORKLOAD

TUNING_PIPELINE = "flywheel-tuning"


class TuningOutputs(NamedTuple):
    version: int
    # Every trial, best objective first, the best marked (``record_trials``' rows).
    trials: list


def rounds_for(spec: TuningSpec) -> int:
    """How many rounds of ``max_parallel_jobs`` trials the search takes."""
    return math.ceil(spec.max_jobs / spec.max_parallel_jobs)


def _default_search() -> TuningSpec:
    from flywheel.components.contract.workload import load_workload

    tuning = load_workload(TUNING_WORKLOAD).tuning
    assert tuning is not None, f"{TUNING_WORKLOAD} declares a tuning section"
    return tuning


def build_tuning_pipeline(
    *,
    search: TuningSpec | None = None,
    name: str = TUNING_PIPELINE,
    workload: str = TUNING_WORKLOAD,
    compute: str = "local",
    compute_config: dict[str, Any] | None = None,
    place_training: Callable[[PipelineTask], PipelineTask] = lambda task: task,
    cache_registry_steps: bool = False,
) -> GraphComponent:
    """The tuning pipeline, its rounds and parallelism unrolled from ``search`` (by default the
    search of ``builtin:qsar-tuning``), ``place_training`` set on every trial's train task.

    The registry steps are cached by ``registry_state`` only with ``cache_registry_steps``, as
    in the training pipeline (``pipelines.training.build_training_pipeline``).
    """
    search = search or _default_search()
    rounds, parallelism = rounds_for(search), search.max_parallel_jobs
    default_workload, default_compute = workload, compute
    default_config = dict(compute_config or {})

    @dsl.pipeline(
        name=name,
        description="Search the hyperparameters, then evaluate, register and gate the best model.",
    )
    def tuning_pipeline(
        workload: str = default_workload,
        source: str = DEFAULT_SOURCE,
        compute: str = default_compute,
        compute_config: dict = default_config,
        hyperparameters: dict = {},  # noqa: B006 - KFP pipeline defaults are compiled, never mutated
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
    ) -> TuningOutputs:
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
        # A run's id would key the cache to the run; cached, the inputs identify it.
        run_id = "" if cache_registry_steps else dsl.PIPELINE_JOB_ID_PLACEHOLDER
        run_name = "" if cache_registry_steps else dsl.PIPELINE_JOB_NAME_PLACEHOLDER

        def gate(model: PipelineChannel) -> PipelineTask:
            """What the training pipeline does after training: evaluate, register, gate."""
            evaluated = evaluate_model(
                workload=workload,
                compute=compute,
                compute_config=compute_config,
                model=model,
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
            registered = (
                register_model(
                    registry=registry,
                    model_name=model_name,
                    workload=workload,
                    run_id=run_id,
                    run_name=run_name,
                    registry_state=registry_state,
                    training_batches=training_batches,
                    model=model,
                    metrics=evaluated.outputs["metrics"],
                    train=prepared.outputs["train"],
                    test=prepared.outputs["test"],
                    champion=champion.outputs["metrics"],
                )
                .set_display_name("register")
                .set_caching_options(cache_registry_steps)
            )
            decided = (
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
            with dsl.If(decided.output == True, name="beats-champion"):  # noqa: E712 - KFP condition
                promote_model(
                    registry=registry,
                    model_name=model_name,
                    workload=workload,
                    version=registered.outputs["version"],
                    registry_state=registry_state,
                    champion=champion.outputs["metrics"],
                ).set_display_name("promote").set_caching_options(cache_registry_steps)
            return registered

        with dsl.If(compute == "sagemaker", name="sagemaker-tuning"):
            tuned = tune_on_sagemaker(
                workload=workload,
                compute_config=compute_config,
                hyperparameters=hyperparameters,
                code_fingerprint=code_fingerprint,
                run_id=run_id,
                train=prepared.outputs["train"],
                test=prepared.outputs["test"],
            ).set_display_name("tune on SageMaker")
            registered_on_sagemaker = gate(tuned.outputs["model"])
        with dsl.Else(name="kfp-trials"):
            journal, best = None, None
            for index in range(1, rounds + 1):
                # The first round has no journal and no best model yet: KFP takes no None. It
                # is given the built rounds instead, to refuse a search that does not fill them.
                earlier = (
                    {"rounds": rounds, "round_size": parallelism}
                    if journal is None
                    else {"journal": journal}
                )
                suggested = suggest_trials(
                    workload=workload, hyperparameters=hyperparameters, **earlier
                ).set_display_name(f"suggest round {index}")
                with dsl.ParallelFor(
                    suggested.outputs["Output"], parallelism=parallelism, name=f"round-{index}"
                ) as trial:
                    trained = train_model(
                        workload=workload,
                        compute=compute,
                        compute_config=compute_config,
                        hyperparameters=trial.hyperparameters,
                        code_fingerprint=code_fingerprint,
                        train=prepared.outputs["train"],
                        test=prepared.outputs["test"],
                        tracking_uri=tracking_uri,
                        # The round's study: the trial's pruner stops it while it trains.
                        study=suggested.outputs["study"],
                        trial_number=trial.number,
                    ).set_display_name("trial")
                    place_training(trained)
                recorded = record_trials(
                    workload=workload,
                    models=dsl.Collected(trained.outputs["model"]),
                    metrics=dsl.Collected(trained.outputs["metrics"]),
                    journal=suggested.outputs["study"],
                    run=run_name,
                    **({} if best is None else {"best_so_far": best}),
                ).set_display_name(f"record round {index}")
                journal, best = recorded.outputs["study"], recorded.outputs["best"]
            registered_on_kfp = gate(best)
        return TuningOutputs(
            version=dsl.OneOf(
                registered_on_sagemaker.outputs["version"], registered_on_kfp.outputs["version"]
            ),
            trials=dsl.OneOf(tuned.outputs["Output"], recorded.outputs["Output"]),
        )

    return tuning_pipeline


def eks_tuning_pipeline(
    placement: Any, *, search: TuningSpec | None = None, cache_registry_steps: bool = False
) -> GraphComponent:
    """The tuning pipeline whose trials train on EKS GPU nodes, as ``placement`` says."""
    from flywheel.components.compute.eks.apply import apply_placement
    from flywheel.components.images import GPU_RUNTIME_IMAGE

    return build_tuning_pipeline(
        search=search,
        cache_registry_steps=cache_registry_steps,
        name=f"{TUNING_PIPELINE}-eks-gpu",
        compute="eks-gpu",
        compute_config={"gpus": placement.gpus},
        place_training=lambda task: apply_placement(task, placement).set_container_image(
            GPU_RUNTIME_IMAGE
        ),
    )
