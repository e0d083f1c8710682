"""QSAR with PyTorch: predict pIC50 from Morgan fingerprints with a small MLP.

The GPU variant of ``train.py``, under the same SageMaker container contract and importing nothing
from Flywheel (only ``qsar_data`` beside it), so it runs unchanged locally, in a SageMaker job and
in an EKS pod. It trains on CUDA when a GPU is visible and on the CPU otherwise. Started by
``torchrun`` (one process per GPU; ``WORLD_SIZE`` > 1) it trains data-parallel with
DistributedDataParallel: NCCL between GPUs, Gloo between CPU processes. Only rank 0 prints metrics
and writes the model.
"""

import json
import os
import time
from pathlib import Path

import numpy as np
from qsar_data import (
    fail,
    fingerprints,
    has_channel,
    hyperparameters,
    model_dir,
    print_metrics,
    read_channel,
    run_with_failure_file,
    smiles_and_labels,
    smiles_from_csv,
)

try:
    import torch
except ModuleNotFoundError:
    # SageMaker's PyTorch containers have torch; a Flywheel install has it only with the extra.
    fail("PyTorch is not installed: pip install 'flywheel-mlops[gpu]' (CPU wheel: see the README)")
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

MODEL_FILE = "model.pt"
SETTINGS_FILE = "settings.json"


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
    smiles, all_labels = smiles_and_labels(read_channel("train"))
    features = fingerprints(smiles, radius, n_bits, dtype=np.float32)
    labels = all_labels.astype(np.float32)
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
            f"training on {len(smiles)} compounds, {n_bits}-bit Morgan radius {radius}, "
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
    print_metrics("train", labels, predict(model, features, settings, device))
    if has_channel("test"):
        test_smiles, truth = smiles_and_labels(read_channel("test"))
        test_features = fingerprints(
            test_smiles, settings["radius"], settings["n_bits"], dtype=np.float32
        )
        print_metrics("test", truth, predict(model, test_features, settings, device))
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, model_dir() / MODEL_FILE)
    (model_dir() / SETTINGS_FILE).write_text(json.dumps(settings))


# --- inference handlers, as SageMaker's PyTorch serving container calls them --------------------


def model_fn(model_dir: str):
    settings = json.loads((Path(model_dir) / SETTINGS_FILE).read_text())
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(settings)
    model.load_state_dict(torch.load(Path(model_dir) / MODEL_FILE, map_location=device))
    return model.to(device), settings, device


input_fn = smiles_from_csv


def predict_fn(smiles: list[str], loaded) -> np.ndarray:
    model, settings, device = loaded
    return predict(
        model,
        fingerprints(smiles, settings["radius"], settings["n_bits"], dtype=np.float32),
        settings,
        device,
    )


if __name__ == "__main__":
    run_with_failure_file(train)
