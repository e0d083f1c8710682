"""KFP v2 components of the evaluation pipeline: score new data, monitor quality, decide retraining.

Like ``components.tasks``, each component declares inputs and outputs and hands paths to a step
in ``components.steps``; failures surface as one line naming the step.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from flywheel.components.tasks import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def find_champion(registry: str, model_name: str, workload: str, champion: Output[Model]):
    """Fetch the registry's champion; fails, saying so, when there is none yet."""
    from pathlib import Path

    from flywheel.components.runtime import reported_step
    from flywheel.components.steps.champion import find_champion as find
    from flywheel.components.workload import load_workload

    with reported_step("find-champion"):
        version = find(
            registry_uri=registry,
            model_name=model_name or load_workload(workload).name,
            model_path=Path(champion.path),
        )
    train_data = version.lineage.get("data", {}).get("train", {})
    champion.metadata.update(
        {
            "name": version.name,
            "version": version.version,
            "model_uri": version.model_uri,
            "metrics": dict(version.metrics),
            "columns": train_data.get("columns") or [],
        }
    )
    print(f"champion: {version.name} version {version.version}", flush=True)


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def prepare_batch(
    source: str,
    workload: str,
    batch: int,
    batch_count: int,
    order_by: str,
    threshold: str,
    cloudwatch: dict,
    notify: dict,
    source_fingerprint: str,
    champion: Input[Model],
    labelled_batch: Output[Dataset],
) -> NamedTuple("PreparedBatch", [("accumulated_batches", int)]):
    """Write batch ``batch`` with its labels; refuse anything that cannot be scored, before scoring."""
    from collections import namedtuple
    from pathlib import Path

    from flywheel.components.cloudwatch import CloudWatchTarget
    from flywheel.components.notify import NotifyTarget
    from flywheel.components.runtime import reported_step
    from flywheel.components.steps.batch import prepare_batch as prepare
    from flywheel.components.workload import load_workload

    with reported_step("prepare-batch"):
        CloudWatchTarget.from_config(cloudwatch)
        NotifyTarget.from_config(notify)
        spec = load_workload(workload)
        features = [c for c in champion.metadata.get("columns", []) if c in spec.columns.features]
        prepared = prepare(
            source=source,
            workload_path=workload,
            batch=batch,
            batch_count=batch_count,
            order_by=order_by,
            threshold=threshold,
            champion_columns=features,
            champion_metrics=list(champion.metadata.get("metrics", {})),
            batch_path=Path(labelled_batch.path),
        )
    labelled_batch.metadata.update(
        {
            "batch": batch,
            "rows": prepared.rows,
            "sha256": prepared.sha256,
            "source": source,
            "source_fingerprint": source_fingerprint,
        }
    )
    outputs = namedtuple("PreparedBatch", ["accumulated_batches"])
    return outputs(prepared.accumulated_batches)


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def plan_shards(labelled_batch: Input[Dataset], rows_per_shard: int) -> list:
    """One shard per ``rows_per_shard`` rows: the items of the scoring ``ParallelFor``."""
    from pathlib import Path

    from flywheel.components.runtime import reported_step
    from flywheel.components.steps.scoring import plan_shards as plan

    with reported_step("plan-shards"):
        return plan(batch_path=Path(labelled_batch.path), rows_per_shard=rows_per_shard)


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def score_shard(
    workload: str,
    compute: str,
    compute_config: dict,
    shard: int,
    rows_per_shard: int,
    champion: Input[Model],
    labelled_batch: Input[Dataset],
    predictions: Output[Dataset],
):
    """Batch-transform one shard of the batch with the champion on the chosen compute."""
    import math
    from pathlib import Path

    from flywheel.components.runtime import reported_step
    from flywheel.components.steps.scoring import score_shard as score

    with reported_step("score-shard"):
        shard_count = max(1, math.ceil(labelled_batch.metadata["rows"] / rows_per_shard))
        rows = score(
            workload_path=workload,
            compute=compute,
            compute_config=compute_config,
            model_path=Path(champion.path),
            batch_path=Path(labelled_batch.path),
            shard=int(shard),
            shard_count=shard_count,
            predictions_path=Path(predictions.path),
        )
    predictions.metadata.update({"shard": int(shard), "rows": rows})


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def monitor_performance(
    workload: str,
    champion: Input[Model],
    labelled_batch: Input[Dataset],
    predictions: Input[list[Dataset]],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[HTML],
):
    """Compare predictions with the ground truth; regression and classification metrics for the UI."""
    import json
    from pathlib import Path

    from flywheel.components.runtime import reported_step
    from flywheel.components.steps.monitor import monitor_performance as monitor

    with reported_step("monitor-performance"):
        result = monitor(
            workload_path=workload,
            batch_path=Path(labelled_batch.path),
            prediction_paths=[Path(p.path) for p in predictions],
            title=f"version {champion.metadata['version']} on batch {labelled_batch.metadata['batch']}",
        )
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
    Path(metrics.path).write_text(json.dumps(result.metrics, indent=2))
    if result.classification is not None:
        classification.log_confusion_matrix(
            result.classification.labels, result.classification.confusion
        )
        if result.classification.roc is not None:
            classification.log_roc_curve(*result.classification.roc)
    Path(classification.path).write_text(json.dumps(classification.metadata))
    Path(report.path).write_text(result.page)


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def publish_metrics(
    history: str,
    cloudwatch: dict,
    run_id: str,
    champion: Input[Model],
    labelled_batch: Input[Dataset],
    metrics: Input[Metrics],
):
    """Record the evaluation once and send it to CloudWatch when configured."""
    from flywheel.components.evaluation import logged_metrics
    from flywheel.components.runtime import reported_step
    from flywheel.components.steps.publish import publish_evaluation

    with reported_step("publish-metrics"):
        published = publish_evaluation(
            history_root=history,
            cloudwatch=cloudwatch,
            model_name=champion.metadata["name"],
            model_version=int(champion.metadata["version"]),
            batch=int(labelled_batch.metadata["batch"]),
            batch_sha256=labelled_batch.metadata["sha256"],
            metrics=logged_metrics(metrics.metadata),
            run_id=run_id,
        )
    first = "recorded" if published.first_evaluation else "already recorded"
    print(f"evaluation {first}; {published.data_points} CloudWatch data point(s) sent", flush=True)


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def decide_retraining(
    history: str,
    workload: str,
    threshold: str,
    run_id: str,
    champion: Input[Model],
    labelled_batch: Input[Dataset],
    metrics: Input[Metrics],
) -> bool:
    """True when quality breaches the threshold and no retrain has fired for this breach yet."""
    from flywheel.components.evaluation import logged_metrics
    from flywheel.components.runtime import reported_step
    from flywheel.components.steps.retrain import decide_retraining as decide
    from flywheel.components.workload import load_workload

    with reported_step("decide-retraining"):
        decision = decide(
            history_root=history,
            model_name=champion.metadata["name"],
            task=load_workload(workload).task,
            threshold=threshold,
            model_version=int(champion.metadata["version"]),
            batch=int(labelled_batch.metadata["batch"]),
            batch_sha256=labelled_batch.metadata["sha256"],
            metrics=logged_metrics(metrics.metadata),
            run_id=run_id,
        )
    print(f"retrain: {decision.retrain} ({decision.reason})", flush=True)
    return decision.retrain


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def finalize(champion: Input[Model], labelled_batch: Input[Dataset]):
    """Quality holds: the champion stays; nothing to retrain."""
    print(
        f"version {champion.metadata['version']} stays champion after batch {labelled_batch.metadata['batch']}",
        flush=True,
    )


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def record_outcome(
    history: str,
    model_name: str,
    workload: str,
    notify: dict,
    run_id: str,
    status: dsl.PipelineTaskFinalStatus,
    summary: Output[Markdown],
):
    """Exit handler: on every path, failure included, write the run summary and notify."""
    from pathlib import Path

    from flywheel.components.runtime import last_failure, reported_step
    from flywheel.components.steps.outcome import summarize_run
    from flywheel.components.workload import load_workload

    with reported_step("record-outcome"):
        error = ""
        if status.state != "SUCCEEDED":
            error = last_failure() or status.error_message or "a task failed"
        text = summarize_run(
            history_root=history,
            model_name=model_name or load_workload(workload).name,
            run_id=run_id,
            state=status.state,
            error=error,
            notify_config=notify,
        )
    Path(summary.path).write_text(text)
    print(text, flush=True)
