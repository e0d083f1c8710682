"""The serving half of the pair (``serving.entry_point``): it loads what train.py saved."""

import os
import pickle


def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.pkl"), "rb") as handle:
        return pickle.load(handle)
