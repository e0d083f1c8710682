"""A random forest with no dependencies beyond the scikit-learn container, in script mode.

Hyperparameters, the feature list and file names arrive as arguments; channels and the model
folder as SageMaker's environment variables; the test file is scored at the end of training.
"""

import argparse
import os

import joblib
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import r2_score

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-estimators", type=int, default=10)
    parser.add_argument("--min-samples-leaf", type=int, default=3)
    parser.add_argument("--model-dir", type=str, default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", type=str, default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--test", type=str, default=os.environ.get("SM_CHANNEL_TEST"))
    parser.add_argument("--train-file", type=str, default="train.csv")
    parser.add_argument("--test-file", type=str, default="test.csv")
    parser.add_argument("--features", type=str)
    parser.add_argument("--target", type=str)
    args, _ = parser.parse_known_args()

    train_df = pd.read_csv(os.path.join(args.train, args.train_file))
    test_df = pd.read_csv(os.path.join(args.test, args.test_file))
    X_train, y_train = train_df[args.features.split()], train_df[args.target]
    X_test, y_test = test_df[args.features.split()], test_df[args.target]

    model = RandomForestRegressor(
        n_estimators=args.n_estimators, min_samples_leaf=args.min_samples_leaf, n_jobs=-1
    )
    model.fit(X_train.values, y_train)
    print(f"trees={len(model.estimators_)}")
    print(f"test_r2={r2_score(y_test, model.predict(X_test.values)):.4f}")
    joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
