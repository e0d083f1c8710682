"""Prepare one batch of new labelled data for scoring, refusing what cannot be scored.

Every check here runs before any scoring: a threshold on a metric the task does not produce, a
batch whose columns do not match the champion's input, an empty batch, missing labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flywheel.components import data
from flywheel.components.errors import InvalidSpecError
from flywheel.components.monitoring import parse_threshold
from flywheel.components.packaging import sha256_of_file
from flywheel.components.workload import load_workload


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
    batch_path: Path,
) -> PreparedBatch:
    """Write batch ``batch`` of ``source`` (cut as the training pipeline cuts it) to ``batch_path``."""
    workload = load_workload(workload_path)
    parse_threshold(threshold, workload.task)
    if not 0 <= batch < batch_count:
        raise InvalidSpecError(
            "batch",
            f"must be between 0 and {batch_count - 1} (batch_count {batch_count}), got {batch}",
        )
    header, rows = data.read_table(source)
    expected = list(champion_columns) or list(workload.columns.features)
    missing_inputs = [column for column in expected if column not in header]
    if missing_inputs:
        raise InvalidSpecError(
            "batch",
            f"columns do not match the model's input: missing {', '.join(missing_inputs)}; batch has {', '.join(header)}",
        )
    if workload.columns.label not in header:
        raise InvalidSpecError(
            "batch", f"ground truth lacks the label column {workload.columns.label!r}"
        )
    if not rows:
        raise InvalidSpecError("batch", f"{source} is empty: nothing to score")
    selected = data.ordered_batches(rows, batch_count, order_by)[batch]
    unlabelled = [
        row[workload.columns.id] for row in selected if not row.get(workload.columns.label)
    ]
    if unlabelled:
        raise InvalidSpecError(
            "batch",
            f"{len(unlabelled)} row(s) have no {workload.columns.label} label, e.g. id {unlabelled[0]}",
        )
    data.check_table(
        f"batch {batch} of {source}", header, selected, workload.columns, task=workload.task
    )
    data.write_table(batch_path, header, selected)
    return PreparedBatch(
        rows=len(selected), sha256=sha256_of_file(batch_path), accumulated_batches=batch + 1
    )
