"""What batch scoring sends the model and reads back, per content type, as batch transform does.

Batch transform sends an input file's bytes as the request body with the job's ``ContentType``
and writes the response to ``<file>.out``. So the rows to score are written as SageMaker's
default decoders expect them (``text/csv`` without a header, a JSON list of rows, a ``.npy``
matrix: the feature columns only), or as JSON Lines (``application/jsonlines``: one JSON array of
feature values per line, so ``SplitType: Line`` cuts it into records), and each response is read
back to one prediction per row.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from flywheel.components.channels import Row, typed_columns, write_npy
from flywheel.components.errors import InvalidSpecError

REQUEST_FILES = {
    "text/csv": "rows.csv",
    "application/json": "rows.json",
    "application/x-npy": "rows.npy",
    "application/jsonlines": "rows.jsonl",
}


def write_request(
    folder: Path, columns: Sequence[str], rows: Sequence[Row], content_type: str
) -> Path:
    """The rows' ``columns`` as one request file of ``content_type``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / REQUEST_FILES[content_type]
    if content_type == "text/csv":
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows([row[name] for name in columns] for row in rows)
        return path
    values = typed_columns(columns, rows)
    matrix = [[values[name][index] for name in columns] for index in range(len(rows))]
    if content_type == "application/json":
        path.write_text(json.dumps(matrix))
    elif content_type == "application/jsonlines":
        path.write_text("".join(json.dumps(row) + "\n" for row in matrix))
    else:
        write_npy(path, columns, values, "serving.content_type")
    return path


def read_response(path: Path, accept: str) -> list[str]:
    """One prediction per row: ``value`` or ``label,probability``, as a CSV response line reads."""
    if accept == "text/csv":
        return [line for line in path.read_text().splitlines() if line.strip()]
    if accept == "application/json":
        predictions = json.loads(path.read_text())
    elif accept == "application/jsonlines":
        predictions = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        import numpy as np

        predictions = np.load(io.BytesIO(path.read_bytes()), allow_pickle=False).tolist()
    if not isinstance(predictions, list):
        raise InvalidSpecError(
            "serving.accept", f"{accept} response is not a list: {predictions!r}"
        )
    return [
        ",".join(str(value) for value in item) if isinstance(item, list) else str(item)
        for item in predictions
    ]
