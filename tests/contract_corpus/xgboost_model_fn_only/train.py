"""XGBoost script mode that defines only ``model_fn``.

The XGBoost container serves it with its own defaults: the CSV request decoded into a ``DMatrix``,
``booster.predict``, the scores encoded for ``accept``. Training reads ``train.csv`` headerless,
label first, and pickles the Booster as ``xgboost-model``, as the public scripts do.
"""

import argparse
import os
import pickle

import pandas as pd
import xgboost as xgb


def model_fn(model_dir):
    with open(os.path.join(model_dir, "xgboost-model"), "rb") as handle:
        return pickle.load(handle)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--num_round", type=int, default=10)
    parser.add_argument("--max_depth", type=int, default=3)
    parser.add_argument("--train", type=str, default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--model_dir", type=str, default=os.environ.get("SM_MODEL_DIR"))
    args, _ = parser.parse_known_args()

    frame = pd.read_csv(os.path.join(args.train, "train.csv"), header=None)
    train = xgb.DMatrix(frame.iloc[:, 1:].values, label=frame.iloc[:, 0].values)
    params = {"max_depth": args.max_depth, "eta": 0.3, "objective": "reg:squarederror"}
    booster = xgb.train(params, train, num_boost_round=args.num_round)
    print(f"rounds={booster.num_boosted_rounds()}")
    with open(os.path.join(args.model_dir, "xgboost-model"), "wb") as handle:
        pickle.dump(booster, handle)
