"""Prepare data: check the table, cut ordered batches, split the first batches into train and test.

The table streams through once in record batches: each slice goes to its batch file and, for the
training batches, to the train or test file as the seeded hold-out mask says. Memory follows the
record batch, not the table (unless ``order_by`` asks for a sort).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from flywheel.components.contract.packaging import sha256_of_file
from flywheel.components.contract.workload import load_workload
from flywheel.components.data import batches as data
from flywheel.components.data import tables
from flywheel.components.errors import InvalidSpecError
from flywheel.components.steps.preprocess import preprocess_source


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
    compute: str = "local",
    compute_config: Mapping[str, Any] | None = None,
) -> PreparedData:
    """Write train and test CSVs from batches ``0..training_batches-1``, and every batch to ``batches_dir``.

    A workload with a ``preprocessing`` script runs it on ``compute`` first, and splits its table.
    """
    workload = load_workload(workload_path)
    if not 1 <= training_batches <= batch_count:
        raise InvalidSpecError(
            "training_batches", f"must be between 1 and batch_count ({batch_count})"
        )
    with ExitStack() as files:
        if workload.preprocessing is not None:
            # The preprocessed table lives in a scratch folder until the split has read it.
            scratch = files.enter_context(tempfile.TemporaryDirectory(prefix="flywheel-prepare-"))
            source = str(
                preprocess_source(
                    workload=workload,
                    source=source,
                    compute=compute,
                    compute_config=compute_config,
                    scratch=Path(scratch),
                )
            )
        stream = tables.open_table(source)
        data.check_columns(source, stream.columns, workload.columns)
        total, records = data.ordered_rows(
            stream, order_by, check=workload.columns, task=workload.task
        )
        if total == 0:
            raise InvalidSpecError("source", f"{source} has no rows")
        bounds = data.batch_bounds(total, batch_count)
        seen = bounds[training_batches - 1][1]
        holdout = data.holdout_mask(seen, test_fraction, seed)
        counts = {"train": 0, "test": 0}
        train = files.enter_context(tables.csv_writer(train_path, stream.schema))
        test = files.enter_context(tables.csv_writer(test_path, stream.schema))
        writers: dict[int, pa_csv.CSVWriter] = {}
        for index, first, piece in data.cut(records, bounds):
            if index not in writers:
                path = batches_dir / data.batch_file_name(index)
                writers[index] = files.enter_context(tables.csv_writer(path, stream.schema))
            writers[index].write_batch(piece)
            if first < seen:
                mask = holdout.slice(first, piece.num_rows)
                held_out = piece.filter(mask)
                train.write_batch(piece.filter(pc.invert(mask)))
                test.write_batch(held_out)
                counts["test"] += held_out.num_rows
                counts["train"] += piece.num_rows - held_out.num_rows
    return PreparedData(
        train_rows=counts["train"],
        test_rows=counts["test"],
        batch_count=batch_count,
        train_sha256=sha256_of_file(train_path),
        test_sha256=sha256_of_file(test_path),
        columns=stream.columns,
    )
