"""Data preparation: check a table, cut it into ordered batches, split train and test.

Batches are the unit of "new data arrives": batch 0..k-1 train the first model, and each later
batch can be replayed as fresh labelled data for evaluation and retraining. Everything here works
on Arrow record batches as they stream from ``components.data.tables``, so a ten-million-row table
never becomes ten million Python objects; only ``components.data.rows`` (a step's own small CSV
artifacts) hands out rows as dicts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flywheel.components.contract.workload import DataColumns
from flywheel.components.data import tables

# read_table and write_table are still importable from here; steps that only read rows import
# them from ``rows``, which imports no compute kernels.
from flywheel.components.data.rows import Row, read_table, text_table, write_table  # noqa: F401
from flywheel.components.errors import InvalidSpecError


def check_columns(source: str, header: Sequence[str], columns: DataColumns) -> None:
    """Refuse a table that lacks a column the workload needs, naming what it has."""
    missing = [column for column in columns.required if column not in header]
    if missing:
        raise InvalidSpecError(
            "source",
            f"{source} lacks column(s) {', '.join(missing)}; it has {', '.join(header) or 'none'}",
        )


def check_table(
    source: str,
    header: Sequence[str],
    rows: Sequence[Row],
    columns: DataColumns,
    task: str = "regression",
) -> None:
    """Refuse a table the model cannot learn from, naming what is wrong."""
    check_columns(source, header, columns)
    if not rows:
        raise InvalidSpecError("source", f"{source} has no rows")
    check_rows(source, text_table(header, rows), columns, task=task)


def check_rows(
    source: str,
    rows: pa.Table | pa.RecordBatch,
    columns: DataColumns,
    *,
    first_row: int = 0,
    csv_lines: bool = True,
    task: str = "regression",
) -> None:
    """Every required value present, every label a finite number, every numeric feature a number;
    the first offender is named.

    A regression label must be a number; a classification label is any non-empty class name. A
    feature is numeric when most of its values are numbers; a value among them that is not
    (``n/a``, ``?``) would otherwise reach the model as text and fail only when it is scored.

    ``first_row`` is the offset of ``rows`` in the table, so a streamed batch names the line of
    the file (CSV, after its header) or the row (Parquet) where the problem is.
    """

    def where(index: int) -> str:
        number = first_row + index
        return f"line {number + 2}" if csv_lines else f"row {number + 1}"

    empty = blank(rows.column(columns.required[0]))
    for column in columns.required[1:]:
        empty = pc.or_kleene(empty, blank(rows.column(column)))
    first = _first(empty)
    if first >= 0:
        names = [c for c in columns.required if rows.column(c)[first].as_py() in (None, "")]
        raise InvalidSpecError("source", f"{source} {where(first)}: empty {', '.join(names)}")
    for feature in columns.features:
        bad = _stray_text(rows.column(feature))
        if bad >= 0:
            value = rows.column(feature)[bad].as_py()
            raise InvalidSpecError(
                "source",
                f"{source} {where(bad)}: feature {feature}={value!r} is not a number, "
                "though the column's other values are",
            )
    if task == "classification":
        return
    label = rows.column(columns.label)
    numbers = _as_numbers(label)
    bad = -1
    if numbers is None:
        bad = next(i for i, value in enumerate(label.to_pylist()) if not _is_number(value))
    else:
        bad = _first(pc.invert(pc.is_finite(numbers)))
    if bad >= 0:
        raise InvalidSpecError(
            "source",
            f"{source} {where(bad)}: label {columns.label}={label[bad].as_py()!r} is not a number",
        )


def blank(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """True where a value is missing: null, or empty text (how CSV writes a missing value)."""
    missing = pc.is_null(values)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        # Length 0, not == "": comparing with a Python value makes pyarrow import pandas.
        empty = pc.invert(pc.cast(pc.utf8_length(values), pa.bool_()))
        missing = pc.or_kleene(missing, empty)
    return missing


def _first(mask: pa.Array | pa.ChunkedArray) -> int:
    """The index of the first True in ``mask``, or -1."""
    hits = pc.indices_nonzero(mask)
    return hits[0].as_py() if len(hits) else -1


def _as_numbers(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray | None:
    """``values`` as doubles, or None when one of them is not a number."""
    try:
        return pc.cast(values, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


# What ``float()`` reads (and pyarrow's cast): decimals, exponents, inf and nan, any case.
_NUMBER = r"(?i)^\s*[+-]?((\d+\.?\d*|\.\d+)(e[+-]?\d+)?|inf(inity)?|nan)\s*$"


def _stray_text(values: pa.Array | pa.ChunkedArray) -> int:
    """In a column of numbers, the index of the first value that is not one; else -1.

    A column is one of numbers when more than half of its values are; a column of text (a
    SMILES string, a category) is left alone.
    """
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return -1
    if _as_numbers(values) is not None:
        return -1
    numbers = pc.match_substring_regex(values, _NUMBER)
    if 2 * pc.sum(numbers).as_py() <= len(values):
        return -1
    return _first(pc.invert(numbers))


def _is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def batch_bounds(total_rows: int, batch_count: int) -> list[tuple[int, int]]:
    """``[start, end)`` of ``batch_count`` contiguous batches; earlier batches take the remainder."""
    if batch_count < 1:
        raise InvalidSpecError("batch_count", f"must be at least 1, got {batch_count}")
    if batch_count > total_rows:
        raise InvalidSpecError(
            "batch_count", f"{batch_count} batches need at least as many rows; have {total_rows}"
        )
    size, remainder = divmod(total_rows, batch_count)
    bounds, start = [], 0
    for index in range(batch_count):
        end = start + size + (1 if index < remainder else 0)
        bounds.append((start, end))
        start = end
    return bounds


def ordered_rows(
    stream: tables.TableStream,
    order_by: str = "",
    check: DataColumns | None = None,
    task: str = "regression",
) -> tuple[int, Iterator[pa.RecordBatch]]:
    """The table's row count and its rows in batch order: file order, or sorted by ``order_by``.

    File order streams; a sort holds the table in memory, as any sort must. With ``check`` each
    record batch is checked (``check_rows``) as it passes.
    """
    if order_by and order_by not in stream.columns:
        raise InvalidSpecError(
            "order_by", f"no column {order_by!r}; columns: {', '.join(stream.columns)}"
        )
    records = _checked(stream, check, task) if check else stream.batches()
    if not order_by:
        return count_rows(stream), records
    table = pa.Table.from_batches(list(records), schema=stream.schema)
    table = table.take(_sort_indices(table.column(order_by)))
    return table.num_rows, iter(table.to_batches(tables.BATCH_ROWS))


def count_rows(stream: tables.TableStream) -> int:
    """Rows in the table: from the file's metadata where it has them (Parquet), else by reading one column."""
    if stream.num_rows is not None:
        return stream.num_rows
    return sum(batch.num_rows for batch in stream.batches(stream.columns[:1]))


def _checked(
    stream: tables.TableStream, columns: DataColumns, task: str
) -> Iterator[pa.RecordBatch]:
    offset = 0
    for record in stream.batches():
        check_rows(
            stream.uri,
            record,
            columns,
            first_row=offset,
            csv_lines=stream.format == "csv",
            task=task,
        )
        offset += record.num_rows
        yield record


def _sort_indices(values: pa.ChunkedArray) -> pa.Array:
    """Numbers sort as numbers (text from CSV included); anything else sorts as text. Stable."""
    numbers = _as_numbers(values)
    key = numbers if numbers is not None else values
    return pc.sort_indices(key)


def cut(
    records: Iterator[pa.RecordBatch], bounds: Sequence[tuple[int, int]]
) -> Iterator[tuple[int, int, pa.RecordBatch]]:
    """Slice ordered ``records`` at the batch bounds: ``(batch index, first row, slice)``."""
    offset, index = 0, 0
    for record in records:
        position = 0
        while position < record.num_rows and index < len(bounds):
            end = bounds[index][1]
            length = min(record.num_rows - position, end - (offset + position))
            yield index, offset + position, record.slice(position, length)
            position += length
            if offset + position == end:
                index += 1
        offset += record.num_rows


HOLDOUT_BLOCK = 1 << 16


def holdout_mask(rows: int, test_fraction: float, seed: int) -> pa.BooleanArray:
    """A seeded random hold-out: True for exactly ``round(rows * test_fraction)`` test rows.

    Drawn block by block: a hypergeometric draw says how many of the test rows fall in each block
    of ``HOLDOUT_BLOCK`` rows, then that many are chosen inside it. Every subset of that size stays
    equally likely, yet the working memory is one block, and the mask itself one bit per row
    (Arrow's layout, sliced without copying). Both sides get at least one row.
    """
    if not 0 < test_fraction < 1:
        raise InvalidSpecError("test_fraction", f"must be between 0 and 1, got {test_fraction}")
    if rows < 2:
        raise InvalidSpecError("training_batches", f"need at least 2 rows to split, got {rows}")
    test_left = min(rows - 1, max(1, round(rows * test_fraction)))
    rng = np.random.default_rng(seed)
    bits = bytearray((rows + 7) // 8)
    for start in range(0, rows, HOLDOUT_BLOCK):
        size = min(HOLDOUT_BLOCK, rows - start)
        rest = rows - start - size
        chosen = (
            int(rng.hypergeometric(test_left, rest + size - test_left, size)) if rest else test_left
        )
        block = np.zeros(size, dtype=bool)
        block[rng.choice(size, size=chosen, replace=False)] = True
        # Blocks are a multiple of 8 rows, so each one fills whole bytes of the mask.
        packed = np.packbits(block, bitorder="little").tobytes()
        bits[start // 8 : start // 8 + len(packed)] = packed
        test_left -= chosen
    return pa.BooleanArray.from_buffers(pa.bool_(), rows, [None, pa.py_buffer(bytes(bits))])


def split_train_test(table: pa.Table, test_fraction: float, seed: int) -> tuple[pa.Table, pa.Table]:
    """``table`` split by ``holdout_mask``, each side in the table's order."""
    mask = holdout_mask(table.num_rows, test_fraction, seed)
    return table.filter(pc.invert(mask)), table.filter(mask)


def batch_file_name(index: int) -> str:
    return f"batch-{index:03d}.csv"
