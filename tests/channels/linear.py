"""A least-squares model that reads its train channel in whatever layout the test declares.

The layout the script expects arrives as hyperparameters, so each test checks that the files in
``SM_CHANNEL_TRAIN`` are exactly what the workload declared; serving uses SageMaker's defaults.
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np


class Linear:
    def __init__(self, weights, classes=None):
        self.weights = np.asarray(weights, dtype=float)
        self.classes = classes

    def predict(self, features):
        values = np.atleast_2d(np.asarray(features, dtype=float)) @ self.weights[:-1]
        values = values + self.weights[-1]
        if self.classes is None:
            return values
        probability = 1 / (1 + np.exp(-values))
        labels = np.where(probability > 0.5, self.classes[1], self.classes[0])
        return np.column_stack([labels, probability.round(6).astype(str)])


def load(path, fmt, header, label):
    if fmt == "csv":
        matrix = np.genfromtxt(path, delimiter=",", skip_header=1 if header else 0, dtype=str)
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        matrix = np.array([[str(v) for v in row.values()] for row in rows])
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        matrix = np.column_stack(
            [table.column(i).to_numpy().astype(str) for i in range(table.num_columns)]
        )
    else:
        matrix = np.load(path).astype(str)
    if label == "first":
        return matrix[:, 1:].astype(float), matrix[:, 0]
    return matrix[:, :-1].astype(float), matrix[:, -1]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", default="train.csv")
    parser.add_argument("--format", default="csv")
    parser.add_argument("--header", default="true")
    parser.add_argument("--label", default="last")
    parser.add_argument("--task", default="regression")
    args = parser.parse_args()
    folder = Path(os.environ["SM_CHANNEL_TRAIN"])
    assert [p.name for p in folder.iterdir()] == [args.file], list(folder.iterdir())
    features, labels = load(folder / args.file, args.format, args.header == "true", args.label)
    print(f"features={features.shape[1]}", flush=True)
    classes = sorted(set(labels)) if args.task == "classification" else None
    # Classes become -4 and +4, so the fitted line's logistic is a confident probability.
    target = (labels == classes[1]) * 8.0 - 4 if classes else labels.astype(float)
    design = np.column_stack([features, np.ones(len(features))])
    weights = np.linalg.lstsq(design, target, rcond=None)[0]
    Path(os.environ["SM_MODEL_DIR"], "model.json").write_text(
        json.dumps({"weights": weights.tolist(), "classes": classes})
    )


def model_fn(model_dir):
    saved = json.loads(Path(model_dir, "model.json").read_text())
    return Linear(saved["weights"], saved["classes"])
