"""The scikit-learn container's defaults (aws/sagemaker-scikit-learn-container).

Its single-model server is the legacy sagemaker-containers gunicorn app, whose handlers are
``src/sagemaker_sklearn_container/serving.py``: ``default_model_fn`` raises (a script must load its
model), ``default_input_fn`` decodes JSON, CSV or NPY with sagemaker-containers' codecs and casts
JSON and CSV to float32, ``default_predict_fn`` is ``model.predict`` and ``default_output_fn``
encodes for ``accept``. Its CSV decoder squeezes, so a single CSV row (``SplitType: Line`` with
``SingleRecord``) reaches ``model.predict`` as a 1-D array, which scikit-learn refuses; so does
SageMaker (only the multi-model server's handler reshapes it to one row).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flywheel.components.compute.local.handlers import sagemaker_containers as codecs

CONTAINER = "scikit-learn container"
# serving.py ``_user_module_transformer`` raises this UserError.
TRANSFORM_FN_CONFLICT = (
    "Cannot use transform_fn implementation with input_fn, predict_fn, and/or output_fn"
)
UTF8_TYPES = (codecs.JSON, codecs.CSV)

default_model_fn = None


def default_input_fn(body: str | bytes, content_type: str) -> Any:
    array = codecs.decode(body, content_type, CONTAINER)
    return array.astype(np.float32) if content_type in UTF8_TYPES else array


def default_predict_fn(data: Any, model: Any) -> Any:
    try:
        return model.predict(data)
    except ValueError as error:
        if getattr(data, "ndim", 2) < 2:
            error.add_note(
                f"the {CONTAINER} decodes a single CSV row as a 1-D array (sagemaker-containers "
                "squeezes it), as on SageMaker: send several rows per request (split_type None, "
                "or Line with MultiRecord) or reshape it in an input_fn"
            )
        raise


def default_output_fn(prediction: Any, accept: str) -> str | bytes:
    return codecs.encode(prediction, accept, CONTAINER)
