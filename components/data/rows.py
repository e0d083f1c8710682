"""A step's own small tables as rows of text: the train and test splits, a batch to score.

Reading one whole needs pyarrow's readers but none of its compute kernels, so this lives apart
from ``batches``, and pyarrow (which imports numpy) is imported on first use: a step that only
reads rows imports no kernels, and a task that ends before reading a table (score-champion with
no champion yet) imports no pyarrow at all. Each KFP task is a fresh process, so it pays every
import again.

Rows become Arrow text columns by hand (``text_table``): pyarrow's own converter
(``Table.from_pylist``, ``pa.array``) imports pandas the first time it runs, when pandas is
installed, and that one import costs more than the rest of a step's start-up.
"""

from __future__ import annotations

import array
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

Row = dict[str, str]
# Arrow's ``string`` type keeps its offsets as int32; longer text takes pyarrow's converter.
_MAX_TEXT_BYTES = (1 << 31) - 1


def read_table(source: str) -> tuple[list[str], list[Row]]:
    """Header and rows of a small table, every value as text (``""`` for a missing one)."""
    import pyarrow as pa

    from flywheel.components.data import tables

    stream = tables.open_table(source)
    table = stream.read()
    text = pa.schema([(name, pa.string()) for name in table.column_names])
    rows = table.cast(text).to_pylist()
    return stream.columns, [{k: "" if v is None else v for k, v in row.items()} for row in rows]


def write_table(path: Path, header: Sequence[str], rows: Sequence[Row]) -> Path:
    """Rows as CSV with ``header`` (columns not in it are left out)."""
    from flywheel.components.data import tables

    return tables.write_csv(path, text_table(header, rows))


def text_table(header: Sequence[str], rows: Sequence[Mapping[str, object]]) -> pa.Table:
    """``rows`` as a table of text columns named ``header``, as ``Table.from_pylist`` builds it:
    a key a row lacks is null, a key not in ``header`` is left out."""
    import pyarrow as pa

    schema = pa.schema([(name, pa.string()) for name in header])
    columns = [[row.get(name) for row in rows] for name in header]
    if not all(_is_text(values) for values in columns):
        # Values other than text take pyarrow's converter, with its conversions and its errors.
        return pa.Table.from_pylist(list(rows), schema=schema)
    return pa.Table.from_arrays([_text_array(values) for values in columns], schema=schema)


def _is_text(values: Sequence[object]) -> bool:
    if not all(value is None or isinstance(value, str) for value in values):
        return False
    return sum(len(value) for value in values if value is not None) * 4 <= _MAX_TEXT_BYTES


def _text_array(values: Sequence[str | None]) -> pa.StringArray:
    """A ``string`` array laid out from its buffers: offsets, UTF-8 bytes, and validity bits."""
    import pyarrow as pa

    encoded = [b"" if value is None else value.encode() for value in values]
    offsets = array.array("i", [0])
    for text in encoded:
        offsets.append(offsets[-1] + len(text))
    validity = None
    if any(value is None for value in values):
        bits = bytearray((len(values) + 7) // 8)
        for index, value in enumerate(values):
            if value is not None:
                bits[index // 8] |= 1 << (index % 8)
        validity = pa.py_buffer(bytes(bits))
    return pa.StringArray.from_buffers(
        len(values), pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(encoded)), validity
    )
