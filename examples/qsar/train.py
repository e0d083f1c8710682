"""QSAR: predict pIC50 from Morgan fingerprints with a random forest.

A plain training script under SageMaker's container contract. It imports nothing from Flywheel,
so it runs unchanged on the local backend, in a SageMaker training job and in an EKS pod:

* data:            CSV files in $SM_CHANNEL_TRAIN and $SM_CHANNEL_TEST (columns smiles, pIC50)
* hyperparameters: $SM_INPUT_CONFIG_DIR/hyperparameters.json (string values, as SageMaker writes)
* model:           $SM_MODEL_DIR
* failure:         $SM_OUTPUT_DIR/failure, one line, before exiting non-zero
* metrics:         printed as ``name=value`` lines for the metric definitions' regexes

The same file serves the model for batch transform through ``model_fn``/``input_fn``/``predict_fn``.
"""

import csv
import io
import json
import math
import os
import sys
import traceback
from pathlib import Path

import joblib
import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem import rdFingerprintGenerator
from sklearn.ensemble import RandomForestRegressor

RDLogger.DisableLog("rdApp.*")
SMILES_COLUMN = "smiles"
LABEL_COLUMN = "pIC50"
MODEL_FILE = "model.joblib"
SETTINGS_FILE = "featurizer.json"


def hyperparameters() -> dict:
    config_dir = Path(os.environ.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config"))
    raw = json.loads((config_dir / "hyperparameters.json").read_text())
    parsed = {}
    for name, value in raw.items():
        try:
            parsed[name] = json.loads(value)
        except (TypeError, json.JSONDecodeError):
            parsed[name] = value
    return parsed


def read_channel(name: str) -> list[dict]:
    folder = Path(os.environ[f"SM_CHANNEL_{name.upper()}"])
    rows = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        with path.open(newline="") as handle:
            rows.extend(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"channel {name} has no CSV rows in {folder}")
    return rows


def fingerprints(smiles: list[str], radius: int, n_bits: int) -> np.ndarray:
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    matrix = np.zeros((len(smiles), n_bits), dtype=np.uint8)
    for row, text in enumerate(smiles):
        molecule = Chem.MolFromSmiles(text)
        if molecule is None:
            raise ValueError(f"invalid SMILES at row {row}: {text!r}")
        matrix[row] = generator.GetFingerprintAsNumPy(molecule)
    return matrix


def regression_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict:
    errors = predicted - truth
    total = float(np.sum((truth - truth.mean()) ** 2))
    return {
        "rmse": math.sqrt(float(np.mean(errors**2))),
        "mae": float(np.mean(np.abs(errors))),
        "r2": 1.0 - float(np.sum(errors**2)) / total if total > 0 else 0.0,
    }


def train() -> None:
    params = hyperparameters()
    radius, n_bits = int(params["radius"]), int(params["n_bits"])
    train_rows = read_channel("train")
    features = fingerprints([r[SMILES_COLUMN] for r in train_rows], radius, n_bits)
    labels = np.array([float(r[LABEL_COLUMN]) for r in train_rows])
    print(
        f"training on {len(train_rows)} compounds, {n_bits}-bit Morgan radius {radius}", flush=True
    )
    model = RandomForestRegressor(
        n_estimators=int(params["n_estimators"]),
        max_depth=int(params["max_depth"]) or None,
        min_samples_leaf=int(params["min_samples_leaf"]),
        max_features=params["max_features"],
        random_state=int(params["seed"]),
        n_jobs=-1,
    ).fit(features, labels)
    for name, value in regression_metrics(labels, model.predict(features)).items():
        print(f"train_{name}={value:.4f}")
    if os.environ.get("SM_CHANNEL_TEST"):
        test_rows = read_channel("test")
        test_features = fingerprints([r[SMILES_COLUMN] for r in test_rows], radius, n_bits)
        truth = np.array([float(r[LABEL_COLUMN]) for r in test_rows])
        for name, value in regression_metrics(truth, model.predict(test_features)).items():
            print(f"test_{name}={value:.4f}")
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    joblib.dump(model, model_dir / MODEL_FILE)
    (model_dir / SETTINGS_FILE).write_text(json.dumps({"radius": radius, "n_bits": n_bits}))


# --- inference handlers, as SageMaker's scikit-learn serving container calls them ---------------


def model_fn(model_dir: str):
    settings = json.loads((Path(model_dir) / SETTINGS_FILE).read_text())
    return joblib.load(Path(model_dir) / MODEL_FILE), settings


def input_fn(body: str, content_type: str) -> list[str]:
    if content_type != "text/csv":
        raise ValueError(f"unsupported content type {content_type}; send text/csv")
    return [row[SMILES_COLUMN] for row in csv.DictReader(io.StringIO(body))]


def predict_fn(smiles: list[str], model_and_settings) -> np.ndarray:
    model, settings = model_and_settings
    return model.predict(fingerprints(smiles, settings["radius"], settings["n_bits"]))


if __name__ == "__main__":
    try:
        train()
    except Exception as error:
        failure_dir = Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output"))
        failure_dir.mkdir(parents=True, exist_ok=True)
        (failure_dir / "failure").write_text(f"{type(error).__name__}: {error}")
        traceback.print_exc()
        sys.exit(1)
