"""Prepare data: check the table, cut ordered batches, split the first batches into train and test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flywheel.components import data
from flywheel.components.errors import InvalidSpecError
from flywheel.components.packaging import sha256_of_file
from flywheel.components.workload import load_workload


@dataclass(frozen=True)
class PreparedData:
    train_rows: int
    test_rows: int
    batch_count: int
    train_sha256: str
    test_sha256: str
    columns: list[str]


def prepare_data(
    *,
    source: str,
    workload_path: str,
    batch_count: int,
    training_batches: int,
    test_fraction: float,
    seed: int,
    order_by: str,
    train_path: Path,
    test_path: Path,
    batches_dir: Path,
) -> PreparedData:
    """Write train and test CSVs from batches ``0..training_batches-1``, and every batch to ``batches_dir``."""
    workload = load_workload(workload_path)
    if not 1 <= training_batches <= batch_count:
        raise InvalidSpecError(
            "training_batches", f"must be between 1 and batch_count ({batch_count})"
        )
    header, rows = data.read_table(source)
    data.check_table(source, header, rows, workload.columns, task=workload.task)
    batches = data.ordered_batches(rows, batch_count, order_by)
    for index, batch in enumerate(batches):
        data.write_table(batches_dir / data.batch_file_name(index), header, batch)
    seen = [row for batch in batches[:training_batches] for row in batch]
    train_rows, test_rows = data.split_train_test(seen, test_fraction, seed)
    data.write_table(train_path, header, train_rows)
    data.write_table(test_path, header, test_rows)
    return PreparedData(
        train_rows=len(train_rows),
        test_rows=len(test_rows),
        batch_count=batch_count,
        train_sha256=sha256_of_file(train_path),
        test_sha256=sha256_of_file(test_path),
        columns=header,
    )
