"""XGBoost script mode in the shape of the public abalone.py: it defines only ``model_fn``.

SageMaker's XGBoost container serves it with its own defaults: the request decoded into a
``DMatrix`` (text/csv or text/libsvm), ``booster.predict``, the scores encoded for ``accept``.
"""

import argparse
import os
import pickle

import xgboost as xgb


def train(train_file: str, model_dir: str, num_round: int) -> None:
    booster = xgb.train({"max_depth": 2, "eta": 0.5}, xgb.DMatrix(train_file), num_round)
    with open(os.path.join(model_dir, "xgboost-model"), "wb") as handle:
        pickle.dump(booster, handle)


def model_fn(model_dir):
    with open(os.path.join(model_dir, "xgboost-model"), "rb") as handle:
        return pickle.load(handle)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--num_round", type=int, default=5)
    args, _ = parser.parse_known_args()
    train(
        os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.libsvm?format=libsvm"),
        os.environ["SM_MODEL_DIR"],
        args.num_round,
    )
