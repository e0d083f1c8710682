"""A ridge regression served one prediction per request, as SageMaker's public PyTorch script-mode
example serves its model (``input_fn`` reads one JSON array, ``predict_fn`` answers ``[0]``).

Batch scoring must call it once per row: ``SplitType: Line`` with ``BatchStrategy: SingleRecord``.
"""

import argparse
import json
import os

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--model-dir", type=str, default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", type=str, default=os.environ.get("SM_CHANNEL_TRAIN"))
    args, _ = parser.parse_known_args()

    train = pd.concat(
        pd.read_csv(os.path.join(args.train, name)) for name in sorted(os.listdir(args.train))
    )
    model = Ridge(alpha=args.alpha).fit(train.iloc[:, :-1].values, train.iloc[:, -1].values)
    print(f"alpha={args.alpha}")
    joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def input_fn(request_body, request_content_type):
    if request_content_type == "application/json":
        return np.array(json.loads(request_body), dtype=float)
    raise ValueError(f"unsupported content type {request_content_type}")


def predict_fn(input_data, model):
    # One prediction per request, whatever the request holds: the first row's.
    return model.predict(np.atleast_2d(input_data))[:1]
