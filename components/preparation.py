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
):
    """Check the source table and write train/test splits plus ordered batches for replay.

    ``source_fingerprint`` is the source's digest, given so that changed data misses the cache.
    """
    from pathlib import Path

    from flywheel.components.steps.prepare import prepare_data as prepare
    from flywheel.components.steps.runtime import reported_step

    with reported_step("prepare-data"):
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
    """Write batch ``batch`` with its labels; refuse anything that cannot be scored, before scoring."""
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
    """One shard per ``rows_per_shard`` rows: the items of the scoring ``ParallelFor``."""
    from pathlib import Path

    from flywheel.components.steps.runtime import reported_step
    from flywheel.components.steps.scoring import plan_shards as plan

    with reported_step("plan-shards"):
        return plan(batch_path=Path(labelled_batch.path), rows_per_shard=rows_per_shard)
