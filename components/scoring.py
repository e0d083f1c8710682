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
    """Score the held-out rows through batch transform; log RMSE, MAE and R² and draw them."""
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
    """Batch-transform one shard of the batch with the champion on the chosen compute."""
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
