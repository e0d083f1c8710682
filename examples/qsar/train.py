"""QSAR: predict pIC50 from Morgan fingerprints with a random forest.

A plain training script under SageMaker's container contract. It imports nothing from Flywheel
(only ``qsar_data``, a helper module beside it), so it runs unchanged on the local backend, in a
SageMaker training job and in an EKS pod:

* data:            CSV files in $SM_CHANNEL_TRAIN and $SM_CHANNEL_TEST (columns smiles, pIC50)
* hyperparameters: $SM_INPUT_CONFIG_DIR/hyperparameters.json (string values, as SageMaker writes)
* model:           $SM_MODEL_DIR
* failure:         $SM_OUTPUT_DIR/failure, one line, before exiting non-zero
* metrics:         printed as ``name=value`` lines for the metric definitions' regexes

The same file serves the model for batch transform through ``model_fn``/``input_fn``/``predict_fn``.
"""

import json
from pathlib import Path

import joblib
import numpy as np
from qsar_data import (
    fingerprints,
    has_channel,
    hyperparameters,
    model_dir,
    print_metrics,
    read_channel,
    run_with_failure_file,
    smiles_and_labels,
    smiles_from_csv,
)
from sklearn.ensemble import RandomForestRegressor

MODEL_FILE = "model.joblib"
SETTINGS_FILE = "featurizer.json"


def train() -> None:
    params = hyperparameters()
    radius, n_bits = int(params["radius"]), int(params["n_bits"])
    smiles, labels = smiles_and_labels(read_channel("train"))
    print(f"training on {len(smiles)} compounds, {n_bits}-bit Morgan radius {radius}", flush=True)
    features = fingerprints(smiles, radius, n_bits)
    model = RandomForestRegressor(
        n_estimators=int(params["n_estimators"]),
        max_depth=int(params["max_depth"]) or None,
        min_samples_leaf=int(params["min_samples_leaf"]),
        max_features=params["max_features"],
        random_state=int(params["seed"]),
        n_jobs=-1,
    ).fit(features, labels)
    print_metrics("train", labels, model.predict(features))
    if has_channel("test"):
        test_smiles, truth = smiles_and_labels(read_channel("test"))
        print_metrics("test", truth, model.predict(fingerprints(test_smiles, radius, n_bits)))
    joblib.dump(model, model_dir() / MODEL_FILE)
    (model_dir() / SETTINGS_FILE).write_text(json.dumps({"radius": radius, "n_bits": n_bits}))


# --- inference handlers, as SageMaker's scikit-learn serving container calls them ---------------


def model_fn(model_dir: str):
    settings = json.loads((Path(model_dir) / SETTINGS_FILE).read_text())
    return joblib.load(Path(model_dir) / MODEL_FILE), settings


input_fn = smiles_from_csv


def predict_fn(smiles: list[str], model_and_settings) -> np.ndarray:
    model, settings = model_and_settings
    return model.predict(fingerprints(smiles, settings["radius"], settings["n_bits"]))


if __name__ == "__main__":
    run_with_failure_file(train)
