"""Data preparation: read a table, check it, cut it into ordered batches, split train and test.

Batches are the unit of "new data arrives": batch 0..k-1 train the first model, and each later
batch can be replayed as fresh labelled data for evaluation and retraining. Pure ``csv`` keeps
this step fast to start, so a local run pays no pandas import per task.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Sequence
from pathlib import Path

from flywheel.components.errors import InvalidSpecError
from flywheel.components.workload import DataColumns

Row = dict[str, str]
BUILTIN_PREFIX = "builtin:"


def read_table(source: str) -> tuple[list[str], list[Row]]:
    """Rows of a CSV file, or of a built-in public dataset (``builtin:chembl-CHEMBL2321810``)."""
    if source.startswith(BUILTIN_PREFIX):
        from flywheel.components.datasets import load_builtin

        return load_builtin(source.removeprefix(BUILTIN_PREFIX))
    path = Path(source)
    if not path.is_file():
        raise InvalidSpecError(
            "source", f"{source} does not exist (give a CSV file or builtin:<name>)"
        )
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except (UnicodeDecodeError, csv.Error) as error:
        raise InvalidSpecError("source", f"{source} is not a readable CSV file: {error}") from None
    return header, rows


def check_table(
    source: str,
    header: Sequence[str],
    rows: Sequence[Row],
    columns: DataColumns,
    task: str = "regression",
) -> None:
    """Refuse a table the model cannot learn from, naming what is wrong.

    A regression label must be a number; a classification label is any non-empty class name.
    """
    missing = [column for column in columns.required if column not in header]
    if missing:
        raise InvalidSpecError(
            "source",
            f"{source} lacks column(s) {', '.join(missing)}; it has {', '.join(header) or 'none'}",
        )
    if not rows:
        raise InvalidSpecError("source", f"{source} has no rows")
    for number, row in enumerate(rows, start=2):
        if any(row.get(column) in (None, "") for column in columns.required):
            empty = [column for column in columns.required if row.get(column) in (None, "")]
            raise InvalidSpecError("source", f"{source} line {number}: empty {', '.join(empty)}")
        if task == "classification":
            continue
        try:
            label = float(row[columns.label])
        except ValueError:
            label = math.nan
        if not math.isfinite(label):
            raise InvalidSpecError(
                "source",
                f"{source} line {number}: label {columns.label}={row[columns.label]!r} is not a number",
            )


def ordered_batches(rows: Sequence[Row], batch_count: int, order_by: str = "") -> list[list[Row]]:
    """Cut rows into ``batch_count`` contiguous batches, in file order or sorted by a column."""
    if batch_count < 1:
        raise InvalidSpecError("batch_count", f"must be at least 1, got {batch_count}")
    if batch_count > len(rows):
        raise InvalidSpecError(
            "batch_count", f"{batch_count} batches need at least as many rows; have {len(rows)}"
        )
    ordered = list(rows)
    if order_by:
        if order_by not in rows[0]:
            raise InvalidSpecError(
                "order_by", f"no column {order_by!r}; columns: {', '.join(rows[0])}"
            )
        ordered.sort(key=lambda row: _sort_key(row[order_by]))
    size, remainder = divmod(len(ordered), batch_count)
    batches, start = [], 0
    for index in range(batch_count):
        end = start + size + (1 if index < remainder else 0)
        batches.append(ordered[start:end])
        start = end
    return batches


def _sort_key(value: str) -> tuple[int, float, str]:
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def split_train_test(
    rows: Sequence[Row], test_fraction: float, seed: int
) -> tuple[list[Row], list[Row]]:
    """A seeded random hold-out split; both sides get at least one row."""
    if not 0 < test_fraction < 1:
        raise InvalidSpecError("test_fraction", f"must be between 0 and 1, got {test_fraction}")
    if len(rows) < 2:
        raise InvalidSpecError(
            "training_batches", f"need at least 2 rows to split, got {len(rows)}"
        )
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    test_size = min(len(rows) - 1, max(1, round(len(rows) * test_fraction)))
    return shuffled[test_size:], shuffled[:test_size]


def write_table(path: Path, header: Sequence[str], rows: Sequence[Row]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(header), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def batch_file_name(index: int) -> str:
    return f"batch-{index:03d}.csv"
