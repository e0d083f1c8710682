"""Serving code that imports a dependency folder at module level, as the public
train_deploy_xgboost_with_dependencies.py imports ``my_library`` (the SDK's ``dependencies=``)."""

from my_library import doubled


def model_fn(model_dir):
    return None


def predict_fn(data, model):
    return doubled(data.sum(axis=1))
