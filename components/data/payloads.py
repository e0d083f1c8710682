"""What batch scoring sends the model and reads back, per content type, as batch transform does.

Batch transform sends an input file's bytes as the request body with the job's ``ContentType``
and writes the response to ``<file>.out``. So the rows to score are written as SageMaker's
default decoders expect them (``text/csv`` without a header, a JSON list of rows, a ``.npy``
matrix: the feature columns only), or as JSON Lines (``application/jsonlines``: one JSON array of
feature values per line, so ``SplitType: Line`` cuts it into records), and each response is read
back to one prediction per row. With ``SplitType: Line`` every file holds one record per line
(``application/json`` too: one JSON array per line), and the output holds one response per line
(``AssembleWith: Line``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from flywheel.components.contract.channels import Row, typed_columns, write_npy
from flywheel.components.errors import InvalidSpecError

REQUEST_FILES = {
    "text/csv": "rows.csv",
    "application/json": "rows.json",
    "application/x-npy": "rows.npy",
    "application/jsonlines": "rows.jsonl",
}


def write_request(
    folder: Path,
    columns: Sequence[str],
    rows: Sequence[Row],
    content_type: str,
    split_type: str = "None",
) -> Path:
    """The rows' ``columns`` as one request file of ``content_type``, one record a line for ``Line``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / REQUEST_FILES[content_type]
    if content_type == "text/csv":
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows([row[name] for name in columns] for row in rows)
        return path
    values = typed_columns(columns, rows)
    matrix = [[values[name][index] for name in columns] for index in range(len(rows))]
    if content_type == "application/json" and split_type != "Line":
        path.write_text(json.dumps(matrix))
    elif content_type in ("application/json", "application/jsonlines"):
        path.write_text("".join(json.dumps(row) + "\n" for row in matrix))
    else:
        write_npy(path, columns, values, "serving.content_type")
    return path


def _prediction(item: object) -> str:
    """``value``, or ``label,probability`` for a list, as a CSV response line reads."""
    return ",".join(str(value) for value in item) if isinstance(item, list) else str(item)


def _single(value: object) -> str:
    """One record's response as one prediction: ``[0.5]`` (or ``[[0.5]]``) is ``0.5``."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return _prediction(value)


def _listed(accept: str, predictions: object) -> list[object]:
    if not isinstance(predictions, list):
        raise InvalidSpecError(
            "serving.accept", f"{accept} response is not a list: {predictions!r}"
        )
    return predictions


def json_values(text: str) -> list[object]:
    """Every JSON value in ``text``, one after another: one per response, however they are laid
    out (one a line with ``AssembleWith: Line``, or parts' responses joined by the SageMaker
    backend)."""
    decoder = json.JSONDecoder()
    values = []
    index = 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index == len(text):
            return values
        value, index = decoder.raw_decode(text, index)
        values.append(value)


def read_response(
    path: Path, accept: str, split_type: str = "None", batch_strategy: str = "MultiRecord"
) -> list[str]:
    """One prediction per row: ``value`` or ``label,probability``, as a CSV response line reads.

    With ``Line`` and ``SingleRecord`` each response is one record's prediction (a one-element
    list unwrapped); otherwise a JSON response is a list of predictions, and a CSV or JSON Lines
    one holds a prediction a line.
    """
    if accept == "application/x-npy":
        import numpy as np

        matrix = np.load(io.BytesIO(path.read_bytes()), allow_pickle=False).tolist()
        return [_prediction(item) for item in _listed(accept, matrix)]
    text = path.read_text()
    if accept == "text/csv":
        return [line for line in text.splitlines() if line.strip()]
    values = json_values(text)
    if split_type == "Line" and batch_strategy == "SingleRecord":
        return [_single(value) for value in values]
    if accept == "application/jsonlines":
        return [_prediction(value) for value in values]
    return [_prediction(item) for value in values for item in _listed(accept, value)]
