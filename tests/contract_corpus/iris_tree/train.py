"""A decision tree on iris, written the way SageMaker's scikit-learn iris example is.

Label first, no header, every file in the channel read with pandas; ``--max_leaf_nodes`` from
argparse; the model saved with joblib; served by the scikit-learn container's default handlers.
"""

import argparse
import os

import joblib
import pandas as pd
from sklearn import tree

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_leaf_nodes", type=int, default=-1)
    parser.add_argument("--output-data-dir", type=str, default=os.environ["SM_OUTPUT_DATA_DIR"])
    parser.add_argument("--model-dir", type=str, default=os.environ["SM_MODEL_DIR"])
    parser.add_argument("--train", type=str, default=os.environ["SM_CHANNEL_TRAIN"])
    args = parser.parse_args()

    input_files = [os.path.join(args.train, file) for file in os.listdir(args.train)]
    if len(input_files) == 0:
        raise ValueError(f"There are no files in {args.train}.")
    train_data = pd.concat(
        [pd.read_csv(file, header=None, engine="python") for file in input_files]
    )
    train_y = train_data.iloc[:, 0]
    train_X = train_data.iloc[:, 1:]

    max_leaf_nodes = args.max_leaf_nodes if args.max_leaf_nodes > 0 else None
    clf = tree.DecisionTreeClassifier(max_leaf_nodes=max_leaf_nodes)
    clf = clf.fit(train_X, train_y)
    print(f"leaves={clf.get_n_leaves()}")
    joblib.dump(clf, os.path.join(args.model_dir, "model.joblib"))


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
