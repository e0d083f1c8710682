"""A PyTorch regression MLP written for SageMaker's PyTorch container.

Hyperparameters from argparse, data from ``SM_CHANNEL_TRAIN``, the model saved as a state dict
with its settings; ``model_fn`` and ``predict_fn`` serve it (the default decoder gives NumPy).
"""

import argparse
import json
import os

import numpy as np
import pandas as pd
import torch
from torch import nn


def build(inputs, hidden):
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, 1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--model-dir", type=str, default=os.environ["SM_MODEL_DIR"])
    parser.add_argument("--train", type=str, default=os.environ["SM_CHANNEL_TRAIN"])
    args = parser.parse_args()

    torch.manual_seed(0)
    frame = pd.read_csv(os.path.join(args.train, "train.csv"))
    features = torch.tensor(frame.iloc[:, :-1].values, dtype=torch.float32)
    target = frame.iloc[:, -1].values.astype(np.float32)
    mean, scale = float(target.mean()), float(target.std())
    labels = torch.tensor((target - mean) / scale).unsqueeze(1)
    model = build(features.shape[1], args.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    for epoch in range(1, args.epochs + 1):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(features), labels)
        loss.backward()
        optimizer.step()
        print(f"epoch={epoch} loss={loss.item():.4f}")
    torch.save(model.state_dict(), os.path.join(args.model_dir, "model.pth"))
    settings = {"inputs": features.shape[1], "hidden": args.hidden, "mean": mean, "scale": scale}
    with open(os.path.join(args.model_dir, "settings.json"), "w") as handle:
        json.dump(settings, handle)


def model_fn(model_dir):
    with open(os.path.join(model_dir, "settings.json")) as handle:
        settings = json.load(handle)
    model = build(settings["inputs"], settings["hidden"])
    model.load_state_dict(torch.load(os.path.join(model_dir, "model.pth")))
    model.eval()
    return model, settings


def predict_fn(input_data, model_and_settings):
    model, settings = model_and_settings
    with torch.no_grad():
        batch = torch.tensor(np.atleast_2d(input_data), dtype=torch.float32)
        return (model(batch).squeeze(1) * settings["scale"] + settings["mean"]).numpy()
