"""CSV in and out for the serving code, shipped beside it as ``serving.dependencies``."""

import io

import numpy as np


def feature_rows(body):
    """A headerless CSV request body (text or bytes) as a 2-D float matrix."""
    text = body.decode() if isinstance(body, bytes) else body
    return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2)


def csv_lines(predictions):
    return "".join(f"{value}\n" for value in predictions)
