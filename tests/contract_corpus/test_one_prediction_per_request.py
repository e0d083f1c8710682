"""A script that answers one prediction per request is scored row by row when its workload says
``split_type: Line`` and ``batch_strategy: SingleRecord``, as SageMaker batch transform calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import pytest

from flywheel.components.contract.packaging import unpack_archive
from flywheel.components.contract.workload import Workload, load_workload
from flywheel.components.data import batches as data
from flywheel.components.errors import InvalidSpecError
from flywheel.components.registry import LocalModelRegistry
from flywheel.components.steps.scoring import transform_rows

HERE = Path(__file__).parent
# The suite-wide ``train_on_split`` fixture (tests/conftest.py).
TrainOnSplit = Callable[..., Any]
FOLDER = HERE / "one_prediction_per_request"
SOURCE = HERE / "forest_regressor" / "diabetes.csv"


def trained(train_on_split: TrainOnSplit) -> tuple[Path, list[data.Row]]:
    """The script trained on the split; returns the packed model and 12 test rows."""
    split = train_on_split(FOLDER / "workload.yaml", SOURCE)
    _, rows = data.read_table(str(split.test))
    return split.model, rows[:12]


def with_split_type(tmp_path: Path, split_type: str) -> Path:
    """The same workload with another ``split_type`` (``batch_strategy`` left SingleRecord)."""
    text = (FOLDER / "workload.yaml").read_text()
    changed = text.replace("split_type: Line", f"split_type: {split_type}")
    path = tmp_path / "workload.yaml"
    path.write_text(changed + f"source_dir: {FOLDER}\n")
    return path


def score_locally(workload: Workload, model_path: Path, rows: list[data.Row]) -> list[str]:
    """Batch-score ``rows`` on the local backend, as the evaluate step does."""
    return transform_rows(
        workload=workload,
        compute="local",
        compute_config=None,
        model_path=model_path,
        rows=rows,
        job_name="one-per-request",
        log=lambda _: None,
    )


def test_single_record_scores_every_row_through_the_local_transformer(
    train_on_split: TrainOnSplit, tmp_path: Path
) -> None:
    model_path, rows = trained(train_on_split)
    workload = load_workload(FOLDER / "workload.yaml")
    predictions = score_locally(workload, model_path, rows)
    model = joblib.load(unpack_archive(model_path, tmp_path / "unpacked") / "model.joblib")
    features = [[float(row[name]) for name in workload.columns.features] for row in rows]
    assert [float(p) for p in predictions] == pytest.approx(model.predict(features).tolist())


def test_split_type_none_sends_the_file_whole_and_fails_on_the_count(
    train_on_split: TrainOnSplit, tmp_path: Path
) -> None:
    model_path, rows = trained(train_on_split)
    workload = load_workload(with_split_type(tmp_path, "None"))
    with pytest.raises(InvalidSpecError, match=r"1 predictions for 12 rows; .*split_type: Line"):
        score_locally(workload, model_path, rows)


def test_single_record_script_evaluates_through_flywheel_run_training(
    run_training: Callable[..., int], tmp_path: Path
) -> None:
    status = run_training(FOLDER / "workload.yaml", SOURCE)
    assert status == 0
    (version,) = LocalModelRegistry(tmp_path / "registry").versions(
        "corpus-one-prediction-per-request"
    )
    # One prediction per row: a ridge fit on the diabetes data is far better than a constant.
    assert 0 < version.metrics["rmse"] < 70
