"""Prepare data: check a table, split train and test, cut ordered batches for replay.

Public KFP components (``from flywheel.components import ...``). Each one only declares typed inputs
and outputs and hands paths to a plain function in ``components.steps``; failures surface as one
line naming the step.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from flywheel.components.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def prepare_data(
    source: str,
    workload: str,
    batch_count: int,
    training_batches: int,
    test_fraction: float,
    seed: int,
    order_by: str,
    source_fingerprint: str,
    train: Output[Dataset],
    test: Output[Dataset],
    batches: Output[Dataset],
    compute: str = "local",
    compute_config: dict = {},  # noqa: B006 - KFP defaults are compiled, never mutated
    code_fingerprint: str = "",
    table: Input[Dataset] = None,
):
    """Check a labelled table against the workload, then cut it into train/test and replay batches.

    The table is cut, in order, into ``batch_count`` batches. The first ``training_batches`` are
    split into train and held-out test rows; every batch is also kept, so that the evaluation
    pipeline can replay later ones as new data arriving. Columns, labels and sizes are checked
    here, so a bad table fails before any compute is spent.

    Args:
        source: The labelled table: a CSV or Parquet path, ``s3://bucket/key``, or
            ``builtin:<name>`` for a data set shipped with Flywheel.
        workload: The workload (``builtin:<name>``, a folder or its ``workload.yaml``, or an
            ``s3://`` code bundle); its columns say which are the id, features and label.
        batch_count: How many ordered batches to cut the table into.
        training_batches: How many leading batches to train on, from 1 to ``batch_count``.
        test_fraction: The share of the training batches' rows held out for testing.
        seed: Seeds the hold-out draw, so the same inputs give the same split.
        order_by: A column to sort rows by before cutting (a time, say); empty keeps file order.
        source_fingerprint: The source's digest, given so that changed data misses the cache.
        compute: Where the workload's own ``preprocessing`` script runs, when it has one
            (``local``, ``sagemaker`` or ``eks-gpu``); it runs on ``source`` before the split.
        compute_config: The backend's settings for that script.
        code_fingerprint: The digest of the workload's code, preprocessing script included, given
            so that a changed script misses the cache.
        table: Optional table to split instead of ``source``: the one CSV or Parquet file in a
            dataset such as ``run_processing``'s outputs (a preprocessing script's result).

    Returns:
        train: The training rows, as CSV; metadata: source, columns, rows, sha256.
        test: The held-out rows, as CSV, that every model is scored on; same metadata.
        batches: A folder with one CSV per batch; metadata: batch_count and order_by.
    """
    from pathlib import Path

    from flywheel.components.steps.prepare import prepare_data as prepare
    from flywheel.components.steps.preprocess import one_table
    from flywheel.components.steps.runtime import reported_step

    with reported_step("prepare-data"):
        if table is not None:
            source = str(one_table(Path(table.path), "table"))
        prepared = prepare(
            source=source,
            workload_path=workload,
            batch_count=batch_count,
            training_batches=training_batches,
            test_fraction=test_fraction,
            seed=seed,
            order_by=order_by,
            train_path=Path(train.path),
            test_path=Path(test.path),
            batches_dir=Path(batches.path),
            compute=compute,
            compute_config=compute_config,
        )
    common = {
        "source": source,
        "source_fingerprint": source_fingerprint,
        "columns": prepared.columns,
    }
    train.metadata.update({**common, "rows": prepared.train_rows, "sha256": prepared.train_sha256})
    test.metadata.update({**common, "rows": prepared.test_rows, "sha256": prepared.test_sha256})
    batches.metadata.update({**common, "batch_count": prepared.batch_count, "order_by": order_by})


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
    """Cut one labelled batch for the champion to score; refuse what cannot be scored, before scoring.

    The batch is cut as ``prepare_data`` cut it, so batch N here is batch N there. The threshold,
    the CloudWatch and notify settings and the batch's columns (against the champion's features)
    are checked first, so a typo fails in seconds, not after scoring.

    Args:
        source: The labelled table to cut the batch from (as for ``prepare_data``).
        workload: The workload the champion was trained for (as for ``prepare_data``).
        batch: Which batch to score, from 0 to ``batch_count - 1``.
        batch_count: How many batches the table is cut into, as the training pipeline cut it.
        order_by: The column rows were sorted by before cutting; empty keeps file order.
        threshold: The retraining rule, ``"<metric> above|below <number>"``, checked here
            against the metrics the champion logged.
        cloudwatch: CloudWatch settings (``namespace``, ``region``, ``endpoint_url``), checked
            here; empty when metrics are not published.
        notify: Notification settings (``sns_topic_arn``, ``webhook_url``, ``region``,
            ``endpoint_url``), checked here; empty for none.
        source_fingerprint: The source's digest, given so that changed data misses the cache.
        champion: The champion model (from ``find_champion``); its metadata names the feature
            columns it was trained on.

    Returns:
        labelled_batch: The batch's rows with their labels, as CSV; metadata: batch, rows,
            sha256, source.
        accumulated_batches: ``batch + 1``: how many leading batches a retrain on this data
            would use.
    """
    from collections import namedtuple
    from pathlib import Path

    from flywheel.components.contract.workload import load_workload
    from flywheel.components.monitoring.cloudwatch import CloudWatchTarget
    from flywheel.components.monitoring.notify import NotifyTarget
    from flywheel.components.steps.batch import prepare_batch as prepare
    from flywheel.components.steps.runtime import reported_step

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
    """Plan the scoring fan-out: one shard per ``rows_per_shard`` rows of the batch, at least one.

    The list it returns is what a ``dsl.ParallelFor`` over ``score_shard`` iterates, so a large
    batch is scored by several tasks at once.

    Args:
        labelled_batch: The batch to score (from ``prepare_batch``).
        rows_per_shard: The most rows one shard scores; at least 1.

    Returns:
        Output: The shard indexes, ``[0, 1, ..., shard_count - 1]``.
    """
    from pathlib import Path

    from flywheel.components.steps.runtime import reported_step
    from flywheel.components.steps.scoring import plan_shards as plan

    with reported_step("plan-shards"):
        return plan(batch_path=Path(labelled_batch.path), rows_per_shard=rows_per_shard)
