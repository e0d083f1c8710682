"""``transform_fn`` beside ``predict_fn``: every serving container refuses to load it."""


def model_fn(model_dir):
    return None


def predict_fn(data, model):
    return data


def transform_fn(model, body, content_type, accept):
    return body
