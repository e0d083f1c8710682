"""A workload folder with a ``tuning`` section, written from YAML text, for the tuning tests."""

from __future__ import annotations

from pathlib import Path

import yaml

BASE = {
    "name": "qsar-pic50",
    "entry_point": "train.py",
    "data": {"id_column": "compound_id", "feature_columns": ["smiles"], "label_column": "pIC50"},
    "hyperparameters": {
        "n_estimators": {"type": "int", "default": 200, "minimum": 1, "maximum": 5000},
        "min_samples_leaf": {"type": "int", "default": 1, "minimum": 1},
        "max_features": {"type": "str", "default": "sqrt", "choices": ["sqrt", "log2", "1.0"]},
        "learning_rate": {"type": "float", "default": 0.1},
        "momentum": {"type": "float", "default": 0.9},
        "n_bits": {"type": "int", "default": 2048, "choices": [512, 1024, 2048, 4096]},
        "seed": {"type": "int", "default": 7},
    },
    "metric_definitions": [
        {"name": "train_rmse", "regex": "train_rmse=([0-9.eE+-]+)"},
        {"name": "test_rmse", "regex": "test_rmse=([0-9.eE+-]+)"},
    ],
    "objective": {"metric": "rmse", "goal": "minimize"},
}

TUNING = """
tuning:
  objective: {metric: test_rmse, type: Minimize}
  strategy: Bayesian
  ranges:
    n_estimators: {type: integer, min: 50, max: 800, scaling: Logarithmic}
    learning_rate: {type: continuous, min: 0.001, max: 0.3, scaling: Logarithmic}
    momentum: {type: continuous, min: 0.5, max: 0.999, scaling: ReverseLogarithmic}
    max_features: {type: categorical, values: [sqrt, log2]}
  max_jobs: 12
  max_parallel_jobs: 3
  early_stopping: Off
  random_seed: 11
"""


def write_workload(folder: Path, tuning_yaml: str = TUNING) -> Path:
    """``folder/workload.yaml`` (with a train.py beside it) whose tuning section is ``tuning_yaml``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text("print('test_rmse=0.5')\n")
    text = yaml.safe_dump(BASE, sort_keys=False) + tuning_yaml
    path = folder / "workload.yaml"
    path.write_text(text)
    return path
