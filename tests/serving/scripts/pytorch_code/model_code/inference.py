"""The serving code inside the model (``code/``), the only place the PyTorch toolkit imports from."""

import helper


def model_fn(model_dir):
    return None


def transform_fn(model, body, content_type, accept):
    return helper.ORIGIN
