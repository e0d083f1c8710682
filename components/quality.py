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
    """Monitor the champion on a new batch: compare its predictions with the ground truth.

    Every row of the batch must have been scored; a missing prediction fails the step rather
    than flattering the metrics. Classification also gets a confusion matrix (and a ROC curve
    when predictions carry probabilities) for the Kubeflow UI.

    Args:
        workload: The workload, whose task (regression or classification) picks the metrics.
        champion: The model that scored the batch (from ``find_champion``); named in the report.
        labelled_batch: The batch with its labels (from ``prepare_batch``).
        predictions: Every shard's predictions (``dsl.Collected`` over ``score_shard``).

    Returns:
        metrics: The task's metrics on this batch, logged for the UI.
        classification: The confusion matrix and ROC curve; empty for regression.
        report: An HTML page that draws predictions against the truth.
    """
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
    """Publish a batch's evaluation: record it in the history once, and send it to CloudWatch.

    The record is keyed by the model version and the batch's digest, so a retried or repeated
    run does not count the same evaluation twice.

    Args:
        history: The evaluation history's folder, where each model's records are kept.
        cloudwatch: CloudWatch settings (``namespace``, ``region``, ``endpoint_url``); empty
            sends nothing.
        run_id: The pipeline run's id, recorded with the evaluation.
        champion: The model evaluated (from ``find_champion``).
        labelled_batch: The batch it was evaluated on (from ``prepare_batch``).
        metrics: The batch's metrics (from ``monitor_performance``).
    """
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
    """Decide whether quality has dropped enough to retrain, at most once per breach.

    A breach is keyed by the model version and the batch's digest in the history, so a retried or
    repeated run does not start a second retrain for the same breach. The decision and its
    reason are recorded either way.

    Args:
        history: The evaluation history's folder, where each model's records are kept.
        workload: The workload, whose task says which metrics a threshold may name.
        threshold: The retraining rule, ``"<metric> above|below <number>"``, e.g.
            ``"rmse above 1.0"``.
        run_id: The pipeline run's id, recorded with the decision.
        champion: The model evaluated (from ``find_champion``).
        labelled_batch: The batch it was evaluated on (from ``prepare_batch``).
        metrics: The batch's metrics (from ``monitor_performance``).

    Returns:
        Output: True when the threshold is breached and no retrain has fired for it yet.
    """
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
    """Close a run whose quality holds: the champion stays and nothing is retrained.

    It does no work; it makes the path the run took visible in the Kubeflow UI and the log.

    Args:
        champion: The champion that stays (from ``find_champion``).
        labelled_batch: The batch it held its quality on (from ``prepare_batch``).
    """
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
    """Record a run's outcome: write its summary to the history and notify, on every path.

    Meant as a ``dsl.ExitHandler``'s exit task, so it runs when the run fails too; a failure is
    summarised with the step that failed and why.

    Args:
        history: The evaluation history's folder, where the outcome is recorded.
        model_name: The registered model's name; empty uses the workload's name.
        workload: The workload, whose name is the model's when ``model_name`` is empty.
        notify: Notification settings (``sns_topic_arn``, ``webhook_url``, ``region``,
            ``endpoint_url``); empty sends nothing.
        run_id: The pipeline run's id, whose records the summary gathers.
        status: The run's final status, which KFP passes to an exit task.

    Returns:
        summary: The run's summary, in Markdown.
    """
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
