"""A decoy in the submit directory: the PyTorch toolkit never reads SAGEMAKER_SUBMIT_DIRECTORY."""

import helper


def model_fn(model_dir):
    return None


def transform_fn(model, body, content_type, accept):
    return "submit directory " + helper.ORIGIN
