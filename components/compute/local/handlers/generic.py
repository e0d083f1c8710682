"""sagemaker-inference's defaults, for a workload that names no framework.

``default_inference_handler.py`` of aws/sagemaker-inference-toolkit: the body is decoded to a NumPy
array by ``decoder.decode`` (``text/csv``, ``application/json``, ``application/x-npy``) and the
prediction encoded by ``encoder.encode``. Two departures, both kept from before frameworks were
named: the toolkit's own ``default_predict_fn`` raises, where this one calls ``model.predict`` (what
the scikit-learn container does, and what such workloads were written against); and the toolkit has
no JSON Lines codec, so ``application/jsonlines`` (batch transform's name for it) is decoded and
encoded here, one JSON value per line.
"""

from __future__ import annotations

import json
from typing import Any

from sagemaker_inference import decoder, encoder

CONTAINER = "sagemaker-inference toolkit"
# transformer.py ``_validate_user_module_and_set_functions`` raises this ValueError.
TRANSFORM_FN_CONFLICT = (
    "Cannot use transform_fn implementation in conjunction with input_fn, predict_fn, "
    "and/or output_fn implementation"
)
JSONLINES = "application/jsonlines"

# ``default_model_fn`` raises NotImplementedError("Please provide a model_fn implementation").
default_model_fn = None


def decode_jsonlines(body: str | bytes) -> Any:
    """One JSON value per line (an array of feature values) as a 2-D array, one row per line."""
    import numpy as np

    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return np.array([json.loads(line) for line in text.splitlines() if line.strip()])


def encode_jsonlines(prediction: Any) -> str:
    """One JSON value per line: each row of the prediction (a value, or a list for a 2-D one)."""
    rows = prediction.tolist() if hasattr(prediction, "tolist") else list(prediction)
    return "".join(json.dumps(row) + "\n" for row in rows)


def default_input_fn(body: str | bytes, content_type: str) -> Any:
    if content_type == JSONLINES:
        return decode_jsonlines(body)
    return decoder.decode(body, content_type)


def default_predict_fn(data: Any, model: Any) -> Any:
    return model.predict(data)


def default_output_fn(prediction: Any, accept: str) -> str | bytes:
    if accept == JSONLINES:
        return encode_jsonlines(prediction)
    return encoder.encode(prediction, accept)
