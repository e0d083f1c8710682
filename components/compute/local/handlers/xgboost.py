"""The XGBoost container's script-mode defaults (aws/sagemaker-xgboost-container).

``src/sagemaker_xgboost_container/serving.py``: ``default_model_fn`` raises (script mode has no
default loader; only algorithm mode, with no script at all, loads ``xgboost-model``),
``default_input_fn`` decodes the request into an ``xgb.DMatrix`` with ``encoder.decode``,
``default_predict_fn`` is ``model.predict(dmatrix, validate_features=False)`` and
``default_output_fn`` encodes with sagemaker-containers' codecs (JSON, CSV, NPY).

``encoder.decode`` strips content-type parameters (``cgi.parse_header``) and takes ``text/csv``
(delimiter sniffed from the first line, empty fields as NaN), ``text/libsvm`` and ``text/x-libsvm``
(dense, the leading label ignored, 1-based indices shifted) and ``application/x-recordio-protobuf``;
not JSON. Its CSV decoder fails on a leading or trailing newline, as its docstring warns.
RecordIO-protobuf is refused here: reading it needs the container's own protobuf code.
"""

from __future__ import annotations

import csv
from typing import Any

import numpy as np
import xgboost as xgb

from flywheel.components.compute.local.handlers import sagemaker_containers as codecs

CONTAINER = "XGBoost container"
# serving.py ``_user_module_transformer`` raises this UserError.
TRANSFORM_FN_CONFLICT = (
    "Cannot use transform_fn implementation with input_fn, predict_fn, and/or output_fn"
)
LIBSVM = "text/libsvm"
X_LIBSVM = "text/x-libsvm"
RECORDIO_PROTOBUF = "application/x-recordio-protobuf"

default_model_fn = None


def csv_to_dmatrix(body: str | bytes) -> xgb.DMatrix:
    """``encoder.csv_to_dmatrix``: rows split at newlines, every one a row, empty fields NaN."""
    text = body.decode() if isinstance(body, bytes) else body
    sniffed = csv.Sniffer().sniff(text.split("\n")[0][:512]).delimiter
    delimiter = "," if sniffed.isalnum() else sniffed
    rows = [["nan" if x == "" else x for x in line.split(delimiter)] for line in text.split("\n")]
    try:
        return xgb.DMatrix(np.array(rows).astype(None))
    except ValueError as error:
        if text != text.strip("\n"):
            error.add_note(
                f"the {CONTAINER}'s CSV decoder refuses a leading or trailing newline, as on "
                "SageMaker: send rows with split_type Line, or strip the body in an input_fn"
            )
        raise


def libsvm_to_dmatrix(body: str | bytes) -> xgb.DMatrix:
    """``encoder.libsvm_to_dmatrix``: a dense matrix of ``index:value`` tokens, labels ignored."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    rows = [
        {int(index): float(value) for index, _, value in (t.partition(":") for t in tokens)}
        for tokens in ([t for t in line.split() if ":" in t] for line in text.strip().split("\n"))
    ]
    if not any(rows):
        return xgb.DMatrix(np.empty((0, 0)))
    indexes = [index for row in rows for index in row]
    offset = 1 if min(indexes) >= 1 else 0
    data = np.zeros((len(rows), max(indexes) - offset + 1))
    for number, row in enumerate(rows):
        for index, value in row.items():
            data[number, index - offset] = value
    return xgb.DMatrix(data)


DECODERS = {codecs.CSV: csv_to_dmatrix, LIBSVM: libsvm_to_dmatrix, X_LIBSVM: libsvm_to_dmatrix}


def default_input_fn(body: str | bytes, content_type: str) -> xgb.DMatrix:
    media_type = content_type.split(";")[0].strip()
    if media_type == RECORDIO_PROTOBUF:
        raise SystemExit(
            f"serving.content_type: the {CONTAINER} decodes {RECORDIO_PROTOBUF} with its own "
            "protobuf reader, which local serving does not have; send text/csv or text/libsvm"
        )
    if media_type not in DECODERS:
        raise codecs.unsupported("content_type", media_type, CONTAINER, DECODERS)
    return DECODERS[media_type](body)


def default_predict_fn(data: Any, model: Any) -> Any:
    return model.predict(data, validate_features=False)


def default_output_fn(prediction: Any, accept: str) -> str | bytes:
    return codecs.encode(prediction, accept, CONTAINER)
