"""What both QSAR scripts share: reading SageMaker's contract, fingerprints and metrics.

A plain module next to the scripts; SageMaker (and every Flywheel backend) copies the whole
source folder to ``/opt/ml/code``, so the scripts import it as any helper module of your own.
"""

import csv
import io
import json
import math
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem import rdFingerprintGenerator

RDLogger.DisableLog("rdApp.*")
SMILES_COLUMN = "smiles"
LABEL_COLUMN = "pIC50"


def hyperparameters() -> dict:
    """``hyperparameters.json``, whose values SageMaker writes as strings, parsed back to JSON."""
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
    """Every row of every CSV file in the channel's folder."""
    folder = Path(os.environ[f"SM_CHANNEL_{name.upper()}"])
    rows = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        with path.open(newline="") as handle:
            rows.extend(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"channel {name} has no CSV rows in {folder}")
    return rows


def has_channel(name: str) -> bool:
    return bool(os.environ.get(f"SM_CHANNEL_{name.upper()}"))


def model_dir() -> Path:
    return Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))


def fingerprints(smiles: list[str], radius: int, n_bits: int, dtype=np.uint8) -> np.ndarray:
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    matrix = np.zeros((len(smiles), n_bits), dtype=dtype)
    for row, text in enumerate(smiles):
        molecule = Chem.MolFromSmiles(text)
        if molecule is None:
            raise ValueError(f"invalid SMILES at row {row}: {text!r}")
        matrix[row] = generator.GetFingerprintAsNumPy(molecule)
    return matrix


def smiles_and_labels(rows: list[dict]) -> tuple[list[str], np.ndarray]:
    return [r[SMILES_COLUMN] for r in rows], np.array([float(r[LABEL_COLUMN]) for r in rows])


def regression_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict:
    errors = predicted - truth
    total = float(np.sum((truth - truth.mean()) ** 2))
    return {
        "rmse": math.sqrt(float(np.mean(errors**2))),
        "mae": float(np.mean(np.abs(errors))),
        "r2": 1.0 - float(np.sum(errors**2)) / total if total > 0 else 0.0,
    }


def print_metrics(prefix: str, truth: np.ndarray, predicted: np.ndarray) -> None:
    """``<prefix>_rmse=…`` lines, for the workload's metric-definition regexes."""
    for name, value in regression_metrics(truth, predicted).items():
        print(f"{prefix}_{name}={value:.4f}", flush=True)


def smiles_from_csv(body: str, content_type: str) -> list[str]:
    """The ``input_fn`` of both scripts: one SMILES per CSV line, no header, as batch transform sends it.

    SageMaker's default CSV decoder turns text into floats, so a text feature needs its own reader.
    """
    if content_type != "text/csv":
        raise ValueError(f"unsupported content type {content_type}; send text/csv")
    return [row[0] for row in csv.reader(io.StringIO(body)) if row]


def fail(reason: str) -> None:
    """Write ``reason`` to the failure file (SageMaker's FailureReason) and exit non-zero."""
    failure_dir = Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output"))
    failure_dir.mkdir(parents=True, exist_ok=True)
    (failure_dir / "failure").write_text(reason)
    sys.exit(1)


def run_with_failure_file(train: Callable[[], None]) -> None:
    """Run ``train``; on an exception, write the reason to the failure file and exit non-zero."""
    try:
        train()
    except Exception as error:
        traceback.print_exc()
        fail(f"{type(error).__name__}: {error}")
