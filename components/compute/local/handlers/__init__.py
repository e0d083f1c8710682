"""Each SageMaker serving container's default inference handlers, and how a script replaces them.

A framework's module (``generic``, ``sklearn``, ``xgboost``, ``pytorch``) holds that container's
``default_model_fn`` (None where the container's raises ``NotImplementedError``), ``default_input_fn``,
``default_predict_fn`` and ``default_output_fn``, the container's words when a script defines
``transform_fn`` beside the others, and the package it cannot serve without.

Handler choice is the same in every container (sagemaker-inference ``transformer.py``
``_validate_user_module_and_set_functions``; scikit-learn and XGBoost ``serving.py``
``_user_module_transformer``): ``model_fn`` is the script's or the default; ``transform_fn``, when
the script defines it, is the only handler called per request, and defining it together with any of
``input_fn``/``predict_fn``/``output_fn`` is refused at load; otherwise each of those three the script
leaves out is the default, one by one.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

# Flywheel's extra that brings a framework's package, for those the base install lacks.
_EXTRAS = {"xgboost": "xgboost", "pytorch": "gpu"}


@dataclass(frozen=True)
class Handlers:
    """What serving calls: ``model_fn(model_dir)`` once, ``transform_fn`` once per request."""

    model_fn: Callable[[str], Any]
    transform_fn: Callable[[Any, str | bytes, str, str], Any]


def defaults_for(framework: str | None) -> ModuleType:
    """The default handlers of ``framework``'s serving container (None: sagemaker-inference's).

    Refuses in one line, naming Flywheel's extra, when the framework's package is not installed.
    """
    name = framework or "generic"
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as error:
        if framework not in _EXTRAS or (error.name or "").startswith("flywheel"):
            raise
        raise SystemExit(
            f"framework: {framework} serving needs the {error.name!r} package, which is not "
            f"installed: pip install 'flywheel-mlops[{_EXTRAS[framework]}]'"
        ) from None


def handlers_of(script: ModuleType | None, defaults: ModuleType, entry_point: str) -> Handlers:
    """The handlers ``defaults``' container would call for ``script`` (None: no script found)."""
    found = {
        name: getattr(script, name, None)
        for name in ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")
    }
    model_fn = found["model_fn"] or defaults.default_model_fn
    if model_fn is None:
        raise SystemExit(
            f"entry_point: {entry_point} defines no model_fn(model_dir), and the "
            f"{defaults.CONTAINER} loads no model by default (its default model_fn raises)"
        )
    transform_fn = found["transform_fn"]
    if transform_fn and (found["input_fn"] or found["predict_fn"] or found["output_fn"]):
        raise SystemExit(f"entry_point: {entry_point}: {defaults.TRANSFORM_FN_CONFLICT}")
    if transform_fn:
        return Handlers(model_fn, transform_fn)
    input_fn = found["input_fn"] or defaults.default_input_fn
    predict_fn = found["predict_fn"] or defaults.default_predict_fn
    output_fn = found["output_fn"] or defaults.default_output_fn

    def default_transform_fn(model: Any, body: str | bytes, content_type: str, accept: str) -> Any:
        # sagemaker-inference transformer.py ``_default_transform_fn``; sagemaker-containers
        # ``_transformer.Transformer._default_transform_fn`` calls the three the same way.
        return output_fn(predict_fn(input_fn(body, content_type), model), accept)

    return Handlers(model_fn, default_transform_fn)


def provide_xgboost_container_package() -> None:
    """Make ``sagemaker_xgboost_container.encoder`` importable, as it is in SageMaker's XGBoost image.

    Serving scripts written for that container import its decoders (``xgb_encoders.
    libsvm_to_dmatrix``); the package is not on PyPI, so where it is not installed, its ``encoder``
    is this module's XGBoost decoders, which follow the container's own.
    """
    if importlib.util.find_spec("sagemaker_xgboost_container") is not None:
        return
    from flywheel.components.compute.local.handlers import xgboost as decoders

    package = ModuleType("sagemaker_xgboost_container")
    package.__path__ = []
    encoder = ModuleType("sagemaker_xgboost_container.encoder")
    encoder.csv_to_dmatrix = decoders.csv_to_dmatrix
    encoder.libsvm_to_dmatrix = decoders.libsvm_to_dmatrix
    encoder.decode = lambda body, content_type: decoders.default_input_fn(body, content_type)
    package.encoder = encoder
    sys.modules.update({package.__name__: package, encoder.__name__: encoder})
