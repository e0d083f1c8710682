"""Channel layouts: how the train and test splits look in ``/opt/ml/input/data/<channel>``.

Scripts written for SageMaker expect their data in a particular shape: a fixed file name
(``train.csv``), no header row with the label first (the built-in algorithms' convention), JSON
Lines, Parquet or a ``.npy`` matrix. ``workload.yaml`` declares that shape per channel and this
module writes it from the prepared splits, just before a backend lays the channel out, so the
prepared data stays one format and every backend gets the same files.

The id column is left out of a channel unless it is listed in ``columns``: an id is a join key,
and a model that trains on it learns row numbers (train/serve skew).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.components.contract.training import validate_channel_name
from flywheel.components.errors import InvalidSpecError

if TYPE_CHECKING:
    from flywheel.components.contract.workload import DataColumns

Row = Mapping[str, str]
# Each format's content type (as inputdataconfig.json's ContentType) and file extension.
FORMATS: dict[str, tuple[str, str]] = {
    "csv": ("text/csv", "csv"),
    "jsonl": ("application/jsonlines", "jsonl"),
    "parquet": ("application/x-parquet", "parquet"),
    "npy": ("application/x-npy", "npy"),
}
LABEL_POSITIONS = ("first", "last", "none")
SPLITS = ("train", "test")
CHANNEL_KEYS = ("split", "file", "format", "header", "label", "columns")
# Without a ``channels`` section: ``train`` and ``test``, CSV with a header, features then label.
DEFAULT_CHANNELS: dict[str, Mapping[str, Any]] = {"train": {}, "test": {}}


@dataclass(frozen=True)
class ChannelLayout:
    """One channel: which split it holds and how its single file is written."""

    name: str
    split: str
    file: str
    format: str
    header: bool
    label: str
    columns: tuple[str, ...]

    @property
    def content_type(self) -> str:
        return FORMATS[self.format][0]


def parse_layout(name: str, raw: Mapping[str, Any], columns: DataColumns) -> ChannelLayout:
    """Check one channel's settings (keys already checked); every problem names its field."""
    where = f"channels.{name}"
    try:
        validate_channel_name(name)
    except ValueError as error:
        raise InvalidSpecError(where, str(error)) from None
    split = raw.get("split", name if name in SPLITS else None)
    if split not in SPLITS:
        raise InvalidSpecError(f"{where}.split", f"{split!r} is not one of {list(SPLITS)}")
    fmt = raw.get("format", "csv")
    if fmt not in FORMATS:
        raise InvalidSpecError(f"{where}.format", f"{fmt!r} is not one of {list(FORMATS)}")
    header = raw.get("header", fmt == "csv")
    if not isinstance(header, bool):
        raise InvalidSpecError(f"{where}.header", f"must be true or false, got {header!r}")
    if header and fmt == "npy":
        raise InvalidSpecError(f"{where}.header", "a .npy matrix has no header; use false")
    label = raw.get("label", "last")
    if label not in LABEL_POSITIONS:
        raise InvalidSpecError(f"{where}.label", f"{label!r} is not one of {list(LABEL_POSITIONS)}")
    chosen = raw.get("columns", list(columns.features))
    allowed = (columns.id, *columns.features)
    if not isinstance(chosen, list) or not chosen:
        raise InvalidSpecError(f"{where}.columns", f"must be a non-empty list of {list(allowed)}")
    unknown = [c for c in chosen if c not in allowed]
    if unknown:
        raise InvalidSpecError(
            f"{where}.columns",
            f"{unknown[0]!r} is not one of {list(allowed)} (the label goes by 'label')",
        )
    file = raw.get("file", f"{name}.{FORMATS[fmt][1]}")
    if not isinstance(file, str) or not file or "/" in file or file.startswith("."):
        raise InvalidSpecError(f"{where}.file", f"must be a plain file name, got {file!r}")
    return ChannelLayout(name, split, file, fmt, header, label, tuple(str(c) for c in chosen))


def file_columns(layout: ChannelLayout, label_column: str) -> tuple[str, ...]:
    """The columns of ``layout``'s file, left to right."""
    if layout.label == "first":
        return (label_column, *layout.columns)
    if layout.label == "last":
        return (*layout.columns, label_column)
    return layout.columns


def write_channel(
    layout: ChannelLayout, rows: Sequence[Row], label_column: str, folder: Path
) -> Path:
    """Write ``rows`` as ``layout`` says into ``folder/<file>``; returns the file."""
    names = file_columns(layout, label_column)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / layout.file
    if layout.format == "csv":
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            if layout.header:
                writer.writerow(names)
            writer.writerows([row[name] for name in names] for row in rows)
        return path
    values = typed_columns(names, rows)
    if layout.format == "jsonl":
        with path.open("w") as handle:
            for index in range(len(rows)):
                handle.write(json.dumps({name: values[name][index] for name in names}) + "\n")
    elif layout.format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({name: values[name] for name in names}), path)
    else:
        write_npy(path, names, values, f"channels.{layout.name}.format")
    return path


def typed_columns(names: Sequence[str], rows: Sequence[Row]) -> dict[str, list[Any]]:
    """Each column's values, as numbers when every value in it is a finite number."""
    return {name: typed_values([row[name] for row in rows]) for name in names}


def typed_values(values: Sequence[str]) -> list[Any]:
    numbers = []
    for value in values:
        try:
            number = float(value)
        except ValueError:
            return list(values)
        if not math.isfinite(number):
            return list(values)
        numbers.append(int(number) if number.is_integer() and "." not in value else number)
    return numbers


def write_npy(
    path: Path, names: Sequence[str], values: Mapping[str, list[Any]], field: str
) -> None:
    """A float matrix, one column per name; refuses a column that is not numeric."""
    import numpy as np

    for name in names:
        if any(isinstance(value, str) for value in values[name]):
            raise InvalidSpecError(
                field,
                f"npy holds numbers only; column {name!r} holds text such as {values[name][0]!r}",
            )
    matrix = np.array([values[name] for name in names], dtype=np.float64).T
    with path.open("wb") as handle:
        np.save(handle, matrix)
