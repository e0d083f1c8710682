"""The serving half of the pair: ``transform_fn`` alone turns a request into its response.

``model_fn`` wraps the forest in a dict, which the scikit-learn container's default
``predict_fn`` could not call: the scores can only come from ``transform_fn``.
"""

import os

import joblib
from scoring_library import csv_lines, feature_rows


def model_fn(model_dir):
    return {"forest": joblib.load(os.path.join(model_dir, "model.joblib"))}


def transform_fn(model, body, content_type, accept):
    assert content_type == "text/csv", content_type
    predictions = model["forest"].predict(feature_rows(body))
    return csv_lines(predictions), accept
