"""Flywheel's KFP v2 component library: ``from flywheel.components import train_model``.

Every name exported here is a typed KFP component (or an image it runs in, or
``run_sharded_processing``, which adds one component per host to a pipeline) that works in any
``@dsl.pipeline`` of yours, on ``kfp.local`` and compiled for Kubeflow Pipelines; Flywheel's own
pipelines are built from these and nothing else. Each component's docstring lists its inputs and
outputs and is what the Kubeflow UI shows. Compiled specs ship in ``components/compiled/``.

Everything else lives in subpackages and is internal: ``compute/`` (the backends: local, SageMaker,
EKS), ``contract/`` (the workload and SageMaker's script contracts), ``data/`` (tables, payloads,
bundles), ``registry/``, ``monitoring/`` and ``steps/`` (the plain functions of paths that the
components call).

Components load on first use, so importing an internal module never imports KFP.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "RUNTIME_IMAGE": "images",
    "GPU_RUNTIME_IMAGE": "images",
    "prepare_data": "preparation",
    "prepare_batch": "preparation",
    "plan_shards": "preparation",
    "run_processing": "processing",
    "merge_outputs": "processing",
    "run_sharded_processing": "processing",
    "plan_training": "planning",
    "train_model": "training",
    "suggest_trials": "tuning",
    "record_trials": "tuning",
    "tune_on_sagemaker": "tuning",
    "evaluate_model": "scoring",
    "score_shard": "scoring",
    "register_model": "registration",
    "find_champion": "registration",
    "score_champion": "registration",
    "read_evaluation_report": "evaluation",
    "decide_promotion": "gate",
    "promote_model": "gate",
    "monitor_performance": "quality",
    "publish_metrics": "quality",
    "decide_retraining": "quality",
    "finalize": "quality",
    "record_outcome": "quality",
    "deploy_endpoint": "deployment",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        # Not a component: let ``from flywheel.components import data`` find the subpackage.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
