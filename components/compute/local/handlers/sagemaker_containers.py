"""The legacy ``sagemaker-containers`` codecs, which the scikit-learn and XGBoost containers serve with.

Their single-model servers (gunicorn + Flask) encode every response, and the scikit-learn one also
decodes every request, with ``sagemaker_containers._encoders`` (v2.8.6.post2, the version the
scikit-learn container pins). That library is not on PyPI for current Pythons, so its codecs are
restated here: JSON, CSV and NPY only, matched exactly (``text/csv; charset=utf-8`` is refused).
Its CSV decoder differs from sagemaker-inference's: ``csv.reader`` rows as strings, ``squeeze()``d,
so a single row comes out 1-D; its CSV encoder writes a 1-D array as one value per line.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"


def _json_to_numpy(body: str | bytes) -> Any:
    return np.array(json.loads(body))


def _csv_to_numpy(body: str | bytes) -> Any:
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    reader = csv.reader(
        io.StringIO(text), delimiter=",", quotechar='"', doublequote=True, strict=True
    )
    return np.array(list(reader)).squeeze()


def _npy_to_numpy(body: str | bytes) -> Any:
    return np.load(
        io.BytesIO(body if isinstance(body, bytes) else body.encode()), allow_pickle=True
    )


def _array_to_json(prediction: Any) -> str:
    return json.dumps(prediction, default=lambda x: x.tolist() if hasattr(x, "tolist") else x)


def _array_to_csv(prediction: Any) -> str:
    array = np.array(prediction)
    if len(array.shape) == 1:
        array = np.reshape(array, (array.shape[0], 1))
    stream = io.StringIO()
    csv.writer(
        stream, lineterminator="\n", delimiter=",", quotechar='"', doublequote=True
    ).writerows(array)
    return stream.getvalue()


def _array_to_npy(prediction: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, prediction)
    return buffer.getvalue()


DECODERS = {JSON: _json_to_numpy, CSV: _csv_to_numpy, NPY: _npy_to_numpy}
ENCODERS = {JSON: _array_to_json, CSV: _array_to_csv, NPY: _array_to_npy}


def unsupported(kind: str, content_type: str, container: str, supported: Any) -> SystemExit:
    """The container's ``UnsupportedFormatError`` (HTTP 415 or 406), as one line."""
    return SystemExit(
        f"serving.{kind}: the {container} handles {sorted(supported)} by default, not "
        f"{content_type!r}; define input_fn/output_fn in the script for other types"
    )


def decode(body: str | bytes, content_type: str, container: str) -> Any:
    """``_encoders.decode``: a NumPy array, or the container's 415 for another type."""
    if content_type not in DECODERS:
        raise unsupported("content_type", content_type, container, DECODERS)
    return DECODERS[content_type](body)


def encode(prediction: Any, accept: str, container: str) -> str | bytes:
    """``_encoders.encode``: the prediction as ``accept``, or the container's 406 for another."""
    if accept not in ENCODERS:
        raise unsupported("accept", accept, container, ENCODERS)
    return ENCODERS[accept](prediction)
