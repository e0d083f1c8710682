"""Training only, as in the SDK's ``train.py`` + ``inference.py`` layout: no handlers here."""

import argparse
import os

import joblib
import pandas as pd
from sklearn.ensemble import RandomForestRegressor

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-estimators", type=int, default=10)
    parser.add_argument("--train", type=str, default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--model-dir", type=str, default=os.environ.get("SM_MODEL_DIR"))
    args, _ = parser.parse_known_args()

    frame = pd.read_csv(os.path.join(args.train, "train.csv"), header=None)
    forest = RandomForestRegressor(n_estimators=args.n_estimators, random_state=0)
    forest.fit(frame.iloc[:, 1:].values, frame.iloc[:, 0].values)
    print(f"trees={len(forest.estimators_)}")
    joblib.dump(forest, os.path.join(args.model_dir, "model.joblib"))
