"""The serving code can live apart from the training code: ``serving.entry_point`` beside a
train.py without handlers, and ``serving.dependencies`` importable by name, through batch scoring."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from flywheel.components.contract.workload import load_workload
from flywheel.components.steps.scoring import transform_rows

SCRIPTS = Path(__file__).parent / "scripts"
ROWS = [{"id": str(i), "x1": str(i), "x2": str(2 * i), "y": "0"} for i in range(1, 6)]


def packed(tmp_path: Path, files: dict[str, bytes]) -> Path:
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, content in files.items():
            (tmp_path / name).write_bytes(content)
            tar.add(tmp_path / name, arcname=name)
    return archive


def score(workload_path: Path, model: Path) -> list[float]:
    predictions = transform_rows(
        workload=load_workload(str(workload_path)),
        compute="local",
        compute_config=None,
        model_path=model,
        rows=ROWS,
        job_name="serving-code-apart",
        log=lambda _: None,
    )
    return [float(p) for p in predictions]


def test_train_py_without_handlers_is_served_by_its_inference_py(tmp_path: Path) -> None:
    features = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    model = LinearRegression().fit(features, features @ np.array([3.0, -1.0]) + 0.5)
    archive = packed(tmp_path, {"model.pkl": pickle.dumps(model)})
    expected = [3.0 * i - 2.0 * i + 0.5 for i in range(1, 6)]
    assert score(SCRIPTS / "pair" / "workload.yaml", archive) == pytest.approx(expected, rel=1e-5)


def test_serving_code_imports_its_dependency_folder_by_name(tmp_path: Path) -> None:
    archive = packed(tmp_path, {"nothing.txt": b""})
    # my_library.doubled(x1 + x2), one line per row (split_type Line, MultiRecord).
    expected = [2.0 * (i + 2 * i) for i in range(1, 6)]
    assert score(SCRIPTS / "with_dependency" / "workload.yaml", archive) == expected
