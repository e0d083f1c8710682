"""Prepare one batch of new labelled data for scoring, refusing what cannot be scored.

Every check here runs before any scoring: a threshold on a metric the task does not produce or
the champion's predictions cannot give (``roc_auc`` without probabilities, or on a batch of one
class), a batch whose columns do not match the champion's input, an empty batch, missing labels. The source
streams (local or S3, CSV or Parquet) and only the chosen batch is kept in memory.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from flywheel.components.contract.packaging import sha256_of_file
from flywheel.components.contract.workload import load_workload
from flywheel.components.data import batches as data
from flywheel.components.data import tables
from flywheel.components.errors import InvalidSpecError
from flywheel.components.monitoring.scores import PROBABILITY_METRICS
from flywheel.components.monitoring.thresholds import parse_threshold


@dataclass(frozen=True)
class PreparedBatch:
    rows: int
    sha256: str
    accumulated_batches: int


def prepare_batch(
    *,
    source: str,
    workload_path: str,
    batch: int,
    batch_count: int,
    order_by: str,
    threshold: str,
    champion_columns: Sequence[str],
    champion_metrics: Collection[str],
    batch_path: Path,
) -> PreparedBatch:
    """Write batch ``batch`` of ``source`` (cut as the training pipeline cuts it) to ``batch_path``.

    ``champion_metrics`` are the metrics the champion's held-out evaluation logged: what its
    predictions can give.
    """
    workload = load_workload(workload_path)
    rule = parse_threshold(threshold, workload.task, champion_metrics)
    if not 0 <= batch < batch_count:
        raise InvalidSpecError(
            "batch",
            f"must be between 0 and {batch_count - 1} (batch_count {batch_count}), got {batch}",
        )
    stream = tables.open_table(source)
    header = stream.columns
    expected = list(champion_columns) or list(workload.columns.features)
    missing_inputs = [column for column in expected if column not in header]
    if missing_inputs:
        raise InvalidSpecError(
            "batch",
            f"columns do not match the model's input: missing {', '.join(missing_inputs)}; batch has {', '.join(header)}",
        )
    label = workload.columns.label
    if label not in header:
        raise InvalidSpecError("batch", f"ground truth lacks the label column {label!r}")
    data.check_columns(source, header, workload.columns)
    total, records = data.ordered_rows(stream, order_by)
    if total == 0:
        raise InvalidSpecError("batch", f"{source} is empty: nothing to score")
    bounds = data.batch_bounds(total, batch_count)
    pieces = []
    for index, _, piece in data.cut(records, bounds):
        if index == batch:
            pieces.append(piece)
        elif index > batch:
            break
    selected = pa.Table.from_batches(pieces, schema=stream.schema)
    unlabelled = selected.filter(data.blank(selected.column(label))).column(workload.columns.id)
    if len(unlabelled):
        raise InvalidSpecError(
            "batch",
            f"{len(unlabelled)} row(s) have no {label} label, e.g. id {unlabelled[0].as_py()}",
        )
    if rule.metric in PROBABILITY_METRICS:
        classes = sorted(str(value) for value in selected.column(label).unique().to_pylist())
        if len(classes) != 2:
            raise InvalidSpecError(
                "threshold",
                f"{rule.metric} needs two classes in the batch; batch {batch} has {', '.join(classes)}",
            )
    data.check_rows(
        f"batch {batch} of {source}",
        selected,
        workload.columns,
        first_row=bounds[batch][0],
        csv_lines=stream.format == "csv" and not order_by,
        task=workload.task,
    )
    tables.write_csv(batch_path, selected)
    return PreparedBatch(
        rows=selected.num_rows, sha256=sha256_of_file(batch_path), accumulated_batches=batch + 1
    )
