"""QSAR evaluation: score the held-out compounds and write evaluation.json, as a SageMaker
Processing script (the evaluation step of SageMaker Pipelines' examples).

* model:  /opt/ml/processing/model/model.tar.gz, as the training job packed it
* test:   every CSV file in /opt/ml/processing/test (columns compound_id, smiles, pIC50)
* report: /opt/ml/processing/evaluation/evaluation.json, {"regression_metrics": {"mse": {"value":
  ..., "standard_deviation": ...}, "rmse": {"value": ...}, "mae": ..., "r2": ...}}

It loads the model through train.py's own ``model_fn`` and ``predict_fn``, so it scores exactly as
serving does.
"""

import csv
import json
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from qsar_data import regression_metrics, smiles_and_labels
from train import model_fn, predict_fn

MODEL_ARCHIVE = Path("/opt/ml/processing/model/model.tar.gz")
TEST_DIR = Path("/opt/ml/processing/test")
REPORT_FILE = Path("/opt/ml/processing/evaluation/evaluation.json")


def main() -> None:
    with tempfile.TemporaryDirectory() as model_dir:
        with tarfile.open(MODEL_ARCHIVE) as archive:
            archive.extractall(model_dir, filter="data")
        model = model_fn(model_dir)
    rows = []
    for path in sorted(TEST_DIR.glob("*.csv")):
        with path.open(newline="") as handle:
            rows.extend(csv.DictReader(handle))
    smiles, truth = smiles_and_labels(rows)
    predicted = np.asarray(predict_fn(smiles, model), dtype=float)
    squared = (predicted - truth) ** 2
    metrics = regression_metrics(truth, predicted)
    report = {
        "regression_metrics": {
            "mse": {"value": float(squared.mean()), "standard_deviation": float(squared.std())},
            **{name: {"value": value} for name, value in metrics.items()},
        }
    }
    REPORT_FILE.parent.mkdir(parents=True, exist_ok=True)
    REPORT_FILE.write_text(json.dumps(report, indent=2))
    print(f"evaluated {len(rows)} compounds: rmse={metrics['rmse']:.4f}", flush=True)


if __name__ == "__main__":
    main()
