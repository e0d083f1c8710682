"""Score: batch-transform held-out rows or a shard of new data through the script's handlers.

Public KFP components (``from flywheel.components import ...``). Each one only declares typed inputs
and outputs and hands paths to a plain function in ``components.steps``; failures surface as one
line naming the step.
"""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from flywheel.components.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def evaluate_model(
    workload: str,
    compute: str,
    compute_config: dict,
    model: Input[Model],
    test: Input[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
):
    """Evaluate a model on the held-out rows: batch-transform them and score the predictions.

    Scoring goes through the script's serving handlers, the same path a deployed model takes, so
    a model that cannot serve fails here rather than after promotion.

    Args:
        workload: The workload the model was trained for; its serving handlers score the rows.
        compute: Where to run batch transform: ``local``, ``sagemaker`` or ``eks-gpu``.
        compute_config: The backend's settings; ``{}`` for ``local``.
        model: The model to evaluate (from ``train_model``).
        test: The held-out rows with their labels (from ``prepare_data``).

    Returns:
        metrics: The task's metrics (RMSE, MAE and R² for regression; accuracy and the like for
            classification), logged for the UI; metadata also holds the row count.
        report: An HTML page that draws predictions against the truth.
    """
    import json
    from pathlib import Path

    from flywheel.components.steps.evaluate import evaluate_model as evaluate
    from flywheel.components.steps.runtime import reported_step

    with reported_step("evaluate-model"):
        result = evaluate(
            workload_path=workload,
            compute=compute,
            compute_config=compute_config,
            model_path=Path(model.path),
            test_path=Path(test.path),
        )
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
    metrics.metadata["rows"] = result.rows
    # The values live in metadata; the file copy lets kfp.local's cache find the artifact on disk.
    Path(metrics.path).write_text(json.dumps(result.metrics, indent=2))
    Path(report.path).write_text(result.page)


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
    """Score one shard of a batch: batch-transform its rows with the champion.

    Meant for the body of a ``dsl.ParallelFor`` over ``plan_shards``; each shard takes every
    ``shard_count``-th row, so shards are disjoint and together cover the batch.

    Args:
        workload: The workload the champion was trained for; its serving handlers score the rows.
        compute: Where to run batch transform: ``local``, ``sagemaker`` or ``eks-gpu``.
        compute_config: The backend's settings; ``{}`` for ``local``.
        shard: This shard's index (an item of ``plan_shards``' list).
        rows_per_shard: The same value given to ``plan_shards``, to count the shards.
        champion: The model that scores (from ``find_champion``).
        labelled_batch: The batch to score (from ``prepare_batch``).

    Returns:
        predictions: ``id,prediction`` lines for this shard's rows; metadata: shard and rows.
    """
    import math
    from pathlib import Path

    from flywheel.components.steps.runtime import reported_step
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
