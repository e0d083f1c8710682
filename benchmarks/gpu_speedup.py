"""How much faster does the PyTorch QSAR example train on a GPU than on this machine's CPU?

Trains ``examples/qsar/train_torch.py`` twice through the EKS backend, under the training-script contract:
once with CUDA hidden (``CUDA_VISIBLE_DEVICES=""``), then, if CUDA is present, on one GPU. Prints,
from this one run, each run's training-loop time (the script's ``train_seconds``: fingerprints
and start-up excluded), its test RMSE, and the speed-up ratio CPU time / GPU time. Without CUDA it
prints the CPU time and says so.

Run with ``.venv/bin/python benchmarks/gpu_speedup.py`` (needs the ``gpu`` extra).
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from flywheel.components.compute.backend import TrainingJobSpec, TrainingResult
from flywheel.components.compute.eks import EksGpuBackend, Placement
from flywheel.components.contract.workload import load_workload
from flywheel.components.data import batches as data
from flywheel.components.data import tables
from flywheel.pipelines.training import DEFAULT_SOURCE, GPU_WORKLOAD


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden-units", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    return parser.parse_args()


def training_spec(scratch: Path, args: argparse.Namespace) -> TrainingJobSpec:
    """The whole built-in ChEMBL assay, split 80/20, with a model big enough to keep a GPU busy."""
    workload = load_workload(GPU_WORKLOAD)
    train, test = data.split_train_test(tables.open_table(DEFAULT_SOURCE).read(), 0.2, seed=7)
    tables.write_csv(scratch / "train" / "train.csv", train)
    tables.write_csv(scratch / "test" / "test.csv", test)
    overrides = {
        "epochs": args.epochs,
        "hidden_units": args.hidden_units,
        "layers": args.layers,
        "batch_size": args.batch_size,
        "n_bits": 4096,
    }
    return workload.training_job(
        job_name="qsar-torch-benchmark",
        channels={"train": str(scratch / "train"), "test": str(scratch / "test")},
        hyperparameters=workload.resolve_hyperparameters(overrides),
        output_location=str(scratch / "out"),
    )


def train_on(device: str, spec: TrainingJobSpec) -> TrainingResult:
    environment = {"CUDA_VISIBLE_DEVICES": ""} if device == "cpu" else {}
    print(f"training on {device} ...", flush=True)
    return EksGpuBackend(Placement(gpus=0 if device == "cpu" else 1)).train(
        replace(spec, job_name=f"{spec.job_name}-{device}", environment=environment),
        log=lambda line: None,
    )


def report(device: str, result: TrainingResult) -> float:
    seconds = result.metrics["train_seconds"]
    print(f"{device}: train_seconds={seconds:.2f} test_rmse={result.metrics['test_rmse']:.4f}")
    return seconds


def main() -> None:
    args = parse_arguments()
    with tempfile.TemporaryDirectory(prefix="flywheel-gpu-benchmark-") as scratch:
        spec = training_spec(Path(scratch), args)
        cpu_seconds = report("cpu", train_on("cpu", spec))
        if not torch.cuda.is_available():
            print("no CUDA device here: no GPU time, no speed-up")
            return
        print(f"gpu: {torch.cuda.get_device_name(0)}")
        gpu_seconds = report("cuda", train_on("cuda", spec))
    print(f"speed-up (cpu / gpu training time): {cpu_seconds / gpu_seconds:.1f}x")


if __name__ == "__main__":
    main()
