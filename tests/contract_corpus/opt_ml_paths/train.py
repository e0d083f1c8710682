"""Gradient boosting written like a bring-your-own-container script: every path hard-coded.

It reads ``/opt/ml/input/config/hyperparameters.json`` and ``/opt/ml/input/data/train`` directly,
writes ``/opt/ml/model`` and explains a failure in ``/opt/ml/output/failure``.
"""

import json
import os
import sys
import traceback

import joblib
import numpy as np
from sklearn.ensemble import GradientBoostingRegressor

prefix = "/opt/ml/"
input_path = prefix + "input/data"
output_path = os.path.join(prefix, "output")
model_path = os.path.join(prefix, "model")
param_path = os.path.join(prefix, "input/config/hyperparameters.json")
training_path = os.path.join(input_path, "train")


def train():
    with open(param_path) as handle:
        params = json.load(handle)
    files = [os.path.join(training_path, name) for name in os.listdir(training_path)]
    data = np.concatenate([np.loadtxt(name, delimiter=",") for name in files])
    labels, features = data[:, 0], data[:, 1:]
    stages = int(json.loads(params.get("n_estimators", "100")))
    rate = float(json.loads(params.get("learning_rate", "0.1")))
    model = GradientBoostingRegressor(n_estimators=stages, learning_rate=rate).fit(features, labels)
    print(f"stages={model.n_estimators_}")
    joblib.dump(model, os.path.join(model_path, "model.joblib"))


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


if __name__ == "__main__":
    try:
        train()
    except Exception as error:
        with open(os.path.join(output_path, "failure"), "w") as handle:
            handle.write(f"Exception during training: {error}")
        traceback.print_exc()
        sys.exit(255)
