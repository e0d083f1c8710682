"""QSAR with PyTorch: predict pIC50 from Morgan fingerprints with a small MLP.

The GPU variant of ``examples/qsar``, under the same SageMaker container contract and importing
nothing from Flywheel, so it runs unchanged locally, in a SageMaker job and in an EKS pod:

* data:            CSV files in $SM_CHANNEL_TRAIN and $SM_CHANNEL_TEST (columns smiles, pIC50)
* hyperparameters: $SM_INPUT_CONFIG_DIR/hyperparameters.json (string values, as SageMaker writes)
* model:           $SM_MODEL_DIR
* failure:         $SM_OUTPUT_DIR/failure, one line, before exiting non-zero
* metrics:         printed as ``name=value`` lines for the metric definitions' regexes

It trains on CUDA when a GPU is visible and on the CPU otherwise. Started by ``torchrun`` (one
process per GPU; ``WORLD_SIZE`` > 1) it trains data-parallel with DistributedDataParallel: NCCL
between GPUs, Gloo between CPU processes. Only rank 0 prints metrics and writes the model.
"""

import csv
import io
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from rdkit import Chem, RDLogger
from rdkit.Chem import rdFingerprintGenerator
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

RDLogger.DisableLog("rdApp.*")
SMILES_COLUMN = "smiles"
LABEL_COLUMN = "pIC50"
MODEL_FILE = "model.pt"
SETTINGS_FILE = "settings.json"


def hyperparameters() -> dict:
    config_dir = Path(os.environ.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config"))
    raw = json.loads((config_dir / "hyperparameters.json").read_text())
    parsed = {}
    for name, value in raw.items():
        try:
            parsed[name] = json.loads(value)
        except (TypeError, json.JSONDecodeError):
            parsed[name] = value
    return parsed


def read_channel(name: str) -> list[dict]:
    folder = Path(os.environ[f"SM_CHANNEL_{name.upper()}"])
    rows = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        with path.open(newline="") as handle:
            rows.extend(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"channel {name} has no CSV rows in {folder}")
    return rows


def fingerprints(smiles: list[str], radius: int, n_bits: int) -> np.ndarray:
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    matrix = np.zeros((len(smiles), n_bits), dtype=np.float32)
    for row, text in enumerate(smiles):
        molecule = Chem.MolFromSmiles(text)
        if molecule is None:
            raise ValueError(f"invalid SMILES at row {row}: {text!r}")
        matrix[row] = generator.GetFingerprintAsNumPy(molecule)
    return matrix


def regression_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict:
    errors = predicted - truth
    total = float(np.sum((truth - truth.mean()) ** 2))
    return {
        "rmse": math.sqrt(float(np.mean(errors**2))),
        "mae": float(np.mean(np.abs(errors))),
        "r2": 1.0 - float(np.sum(errors**2)) / total if total > 0 else 0.0,
    }


def build_model(settings: dict) -> nn.Module:
    """Fingerprint bits -> ``layers`` hidden ReLU layers with dropout -> one pIC50 value."""
    layers, width = [], settings["n_bits"]
    for _ in range(settings["layers"]):
        layers += [
            nn.Linear(width, settings["hidden_units"]),
            nn.ReLU(),
            nn.Dropout(settings["dropout"]),
        ]
        width = settings["hidden_units"]
    return nn.Sequential(*layers, nn.Linear(width, 1))


def choose_device() -> torch.device:
    """This process's GPU under torchrun (LOCAL_RANK), the only GPU, or the CPU."""
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


def predict(
    model: nn.Module, features: np.ndarray, settings: dict, device: torch.device
) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        scaled = model(torch.from_numpy(features).to(device)).squeeze(1).cpu().numpy()
    return scaled * settings["label_std"] + settings["label_mean"]


def train() -> None:
    params = hyperparameters()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = choose_device()
    if world_size > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if world_size > 1 else 0
    torch.manual_seed(int(params["seed"]))

    radius, n_bits = int(params["radius"]), int(params["n_bits"])
    train_rows = read_channel("train")
    features = fingerprints([r[SMILES_COLUMN] for r in train_rows], radius, n_bits)
    labels = np.array([float(r[LABEL_COLUMN]) for r in train_rows], dtype=np.float32)
    settings = {
        "radius": radius,
        "n_bits": n_bits,
        "hidden_units": int(params["hidden_units"]),
        "layers": int(params["layers"]),
        "dropout": float(params["dropout"]),
        # Standardised labels train faster; the statistics travel with the model.
        "label_mean": float(labels.mean()),
        "label_std": float(labels.std()) or 1.0,
    }
    if rank == 0:
        print(
            f"training on {len(train_rows)} compounds, {n_bits}-bit Morgan radius {radius}, "
            f"device {device.type}, {world_size} process(es)",
            flush=True,
        )
    dataset = TensorDataset(
        torch.from_numpy(features),
        torch.from_numpy((labels - settings["label_mean"]) / settings["label_std"]),
    )
    sampler = DistributedSampler(dataset, seed=int(params["seed"])) if world_size > 1 else None
    loader = DataLoader(
        dataset,
        batch_size=int(params["batch_size"]),
        shuffle=sampler is None,
        sampler=sampler,
        pin_memory=device.type == "cuda",
    )
    model = build_model(settings).to(device)
    trained = DistributedDataParallel(model) if world_size > 1 else model
    optimizer = torch.optim.AdamW(
        trained.parameters(),
        lr=float(params["learning_rate"]),
        weight_decay=float(params["weight_decay"]),
    )
    loss_fn = nn.MSELoss()
    started = time.perf_counter()
    for epoch in range(1, int(params["epochs"]) + 1):
        if sampler is not None:
            sampler.set_epoch(epoch)
        trained.train()
        total, count = 0.0, 0
        for batch_features, batch_labels in loader:
            batch_features = batch_features.to(device, non_blocking=True)
            batch_labels = batch_labels.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(trained(batch_features).squeeze(1), batch_labels)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch_labels)
            count += len(batch_labels)
        if rank == 0:
            print(f"epoch={epoch} train_loss={total / count:.4f}", flush=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    if rank == 0:
        print(f"train_seconds={time.perf_counter() - started:.3f}", flush=True)
        report_and_save(model, features, labels, settings, device)
    if world_size > 1:
        dist.barrier()
        dist.destroy_process_group()


def report_and_save(
    model: nn.Module, features: np.ndarray, labels: np.ndarray, settings: dict, device: torch.device
) -> None:
    for name, value in regression_metrics(
        labels, predict(model, features, settings, device)
    ).items():
        print(f"train_{name}={value:.4f}")
    if os.environ.get("SM_CHANNEL_TEST"):
        test_rows = read_channel("test")
        test_features = fingerprints(
            [r[SMILES_COLUMN] for r in test_rows], settings["radius"], settings["n_bits"]
        )
        truth = np.array([float(r[LABEL_COLUMN]) for r in test_rows])
        predicted = predict(model, test_features, settings, device)
        for name, value in regression_metrics(truth, predicted).items():
            print(f"test_{name}={value:.4f}")
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, model_dir / MODEL_FILE)
    (model_dir / SETTINGS_FILE).write_text(json.dumps(settings))


# --- inference handlers, as SageMaker's PyTorch serving container calls them --------------------


def model_fn(model_dir: str):
    settings = json.loads((Path(model_dir) / SETTINGS_FILE).read_text())
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(settings)
    model.load_state_dict(torch.load(Path(model_dir) / MODEL_FILE, map_location=device))
    return model.to(device), settings, device


def input_fn(body: str, content_type: str) -> list[str]:
    if content_type != "text/csv":
        raise ValueError(f"unsupported content type {content_type}; send text/csv")
    return [row[SMILES_COLUMN] for row in csv.DictReader(io.StringIO(body))]


def predict_fn(smiles: list[str], loaded) -> np.ndarray:
    model, settings, device = loaded
    return predict(
        model, fingerprints(smiles, settings["radius"], settings["n_bits"]), settings, device
    )


if __name__ == "__main__":
    try:
        train()
    except Exception as error:
        failure_dir = Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output"))
        failure_dir.mkdir(parents=True, exist_ok=True)
        (failure_dir / "failure").write_text(f"{type(error).__name__}: {error}")
        traceback.print_exc()
        sys.exit(1)
