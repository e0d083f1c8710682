"""The evaluation pipeline: the loop that makes the flywheel turn.

find the champion -> prepare batch N -> score it in shards (``dsl.ParallelFor``) -> monitor
quality against the ground truth -> publish -> is retraining needed? -> retrain on batches 0..N
(the training pipeline, nested) or finalize. An ``dsl.ExitHandler`` records the outcome on every
path, failure included.
"""

from kfp import dsl

from flywheel.components import (
    decide_retraining,
    finalize,
    find_champion,
    monitor_performance,
    plan_shards,
    prepare_batch,
    publish_metrics,
    record_outcome,
    score_shard,
)
from flywheel.pipelines.defaults import (
    DEFAULT_HISTORY,
    DEFAULT_REGISTRY,
    DEFAULT_SOURCE,
    DEFAULT_THRESHOLD,
    DEFAULT_WORKLOAD,
)
from flywheel.pipelines.training import training_pipeline


@dsl.pipeline(
    name="flywheel-evaluation",
    description="Score a new labelled batch with the champion; retrain when quality breaches a threshold.",
)
def evaluation_pipeline(
    batch: int = 2,
    threshold: str = DEFAULT_THRESHOLD,
    workload: str = DEFAULT_WORKLOAD,
    source: str = DEFAULT_SOURCE,
    batch_count: int = 5,
    order_by: str = "",
    compute: str = "local",
    compute_config: dict = {},  # noqa: B006 - KFP pipeline defaults are compiled, never mutated
    rows_per_shard: int = 5000,
    registry: str = DEFAULT_REGISTRY,
    history: str = DEFAULT_HISTORY,
    model_name: str = "",
    cloudwatch: dict = {},  # noqa: B006
    notify: dict = {},  # noqa: B006
    hyperparameters: dict = {},  # noqa: B006
    test_fraction: float = 0.2,
    seed: int = 7,
    margin: float = 0.0,
    source_fingerprint: str = "",
    code_fingerprint: str = "",
    tracking_uri: str = "",
):
    outcome = (
        record_outcome(
            history=history,
            model_name=model_name,
            workload=workload,
            notify=notify,
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        )
        .set_display_name("record outcome")
        .set_caching_options(False)
    )
    with dsl.ExitHandler(outcome, name="evaluate-and-retrain"):
        champion = find_champion(registry=registry, model_name=model_name, workload=workload)
        champion.set_display_name("find champion").set_caching_options(False)
        labelled = prepare_batch(
            source=source,
            workload=workload,
            batch=batch,
            batch_count=batch_count,
            order_by=order_by,
            threshold=threshold,
            cloudwatch=cloudwatch,
            notify=notify,
            source_fingerprint=source_fingerprint,
            champion=champion.outputs["champion"],
        ).set_display_name("prepare batch")
        shards = plan_shards(
            labelled_batch=labelled.outputs["labelled_batch"], rows_per_shard=rows_per_shard
        ).set_display_name("plan shards")
        with dsl.ParallelFor(shards.output, name="shards") as shard:
            scored = score_shard(
                workload=workload,
                compute=compute,
                compute_config=compute_config,
                shard=shard,
                rows_per_shard=rows_per_shard,
                champion=champion.outputs["champion"],
                labelled_batch=labelled.outputs["labelled_batch"],
            ).set_display_name("batch transform")
        monitored = monitor_performance(
            workload=workload,
            champion=champion.outputs["champion"],
            labelled_batch=labelled.outputs["labelled_batch"],
            predictions=dsl.Collected(scored.outputs["predictions"]),
        ).set_display_name("monitor model performance")
        published = (
            publish_metrics(
                history=history,
                cloudwatch=cloudwatch,
                run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                champion=champion.outputs["champion"],
                labelled_batch=labelled.outputs["labelled_batch"],
                metrics=monitored.outputs["metrics"],
            )
            .set_display_name("publish")
            .set_caching_options(False)
        )
        decision = (
            decide_retraining(
                history=history,
                workload=workload,
                threshold=threshold,
                run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                champion=champion.outputs["champion"],
                labelled_batch=labelled.outputs["labelled_batch"],
                metrics=monitored.outputs["metrics"],
            )
            .set_display_name("is retraining needed?")
            .set_caching_options(False)
        )
        decision.after(published)
        with dsl.If(decision.output == True, name="quality-breached"):  # noqa: E712 - a KFP condition
            training_pipeline(
                workload=workload,
                source=source,
                compute=compute,
                compute_config=compute_config,
                hyperparameters=hyperparameters,
                registry=registry,
                model_name=model_name,
                batch_count=batch_count,
                training_batches=labelled.outputs["accumulated_batches"],
                test_fraction=test_fraction,
                seed=seed,
                order_by=order_by,
                margin=margin,
                source_fingerprint=source_fingerprint,
                code_fingerprint=code_fingerprint,
                tracking_uri=tracking_uri,
            ).set_display_name("retrain")
        with dsl.Else(name="quality-holds"):
            finalize(
                champion=champion.outputs["champion"],
                labelled_batch=labelled.outputs["labelled_batch"],
            ).set_display_name("finalize")
