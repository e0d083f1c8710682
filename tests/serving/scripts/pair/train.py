"""Training only, as in the SDK's ``train.py`` + ``inference.py`` layout: no handlers here."""

import os
import pickle

import pandas as pd
from sklearn.linear_model import LinearRegression

if __name__ == "__main__":
    frame = pd.read_csv(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"))
    model = LinearRegression().fit(frame[["x1", "x2"]].values, frame["y"].values)
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.pkl"), "wb") as handle:
        pickle.dump(model, handle)
