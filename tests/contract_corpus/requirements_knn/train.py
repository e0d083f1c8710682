"""k-nearest neighbours with a dependency declared in ``requirements.txt`` beside the script.

SageMaker's framework containers ``pip install -r requirements.txt`` before the script starts;
``threadpoolctl`` is imported at the top, so the script runs only if that happened first.
"""

import argparse
import os

import joblib
import pandas as pd
from sklearn.neighbors import KNeighborsRegressor
from threadpoolctl import threadpool_limits

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-neighbors", type=int, default=5)
    parser.add_argument("--weights", type=str, default="uniform")
    args = parser.parse_args()

    train_dir = os.environ["SM_CHANNEL_TRAIN"]
    frame = pd.concat(pd.read_csv(os.path.join(train_dir, name)) for name in os.listdir(train_dir))
    with threadpool_limits(limits=1):
        model = KNeighborsRegressor(n_neighbors=args.n_neighbors, weights=args.weights)
        model.fit(frame.iloc[:, :-1].values, frame.iloc[:, -1].values)
    print(f"neighbors={model.n_neighbors} weights={model.weights}")
    joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
