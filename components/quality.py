"""Watch quality: monitor a scored batch, publish its metrics, decide retraining, record the outcome.

Public KFP components (``from flywheel.components import ...``). Each one only declares typed inputs
and outputs and hands paths to a plain function in ``components.steps``; failures surface as one
line naming the step.
"""

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from flywheel.components.images import RUNTIME_IMAGE


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

    from flywheel.components.steps.monitor import monitor_performance as monitor
    from flywheel.components.steps.runtime import reported_step

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
    from flywheel.components.monitoring.scores import logged_metrics
    from flywheel.components.steps.publish import publish_evaluation
    from flywheel.components.steps.runtime import reported_step

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
    from flywheel.components.contract.workload import load_workload
    from flywheel.components.monitoring.scores import logged_metrics
    from flywheel.components.steps.retrain import decide_retraining as decide
    from flywheel.components.steps.runtime import reported_step

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

    from flywheel.components.contract.workload import load_workload
    from flywheel.components.steps.outcome import summarize_run
    from flywheel.components.steps.runtime import last_failure, reported_step

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
