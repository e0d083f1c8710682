"""A probe whose ``transform_fn`` answers 42 for every row: no other handler may be called."""


def model_fn(model_dir):
    return "a model the default predict_fn could not call"


def transform_fn(model, body, content_type, accept):
    rows = [line for line in body.splitlines() if line.strip()]
    return "".join("42\n" for _ in rows), accept
