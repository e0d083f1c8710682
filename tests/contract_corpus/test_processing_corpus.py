"""Public SageMaker Processing scripts run unchanged through ``run_processing``, byte for byte.

SageMaker's abalone pipeline: ``preprocessing.py`` (aws/amazon-sagemaker-examples) splits the
headerless abalone CSV 70/15/15 into ``train``, ``validation`` and ``test``, and ``evaluation.py``
(aws/sagemaker-python-sdk's workflow test data) scores a pickled XGBoost model on ``test.csv`` into
``evaluation.json``. Neither is committed here: the tests read them from the clones
``SAGEMAKER_PUBLIC_CHECKOUTS`` names (``public_clones.py``), checking each file's SHA-256 first,
and feed them data and a model made here (``processing/abalone.py``; an XGBoost Booster pickled as
SageMaker's XGBoost container saves it). Without the clones they are skipped, saying so.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import pickle
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from flywheel.components.contract.processing import ProcessingInput, ProcessingOutput
from flywheel.components.monitoring.reports import find_report, load_report, value_at
from flywheel.components.steps.process import run_processing

from .processing.abalone import COLUMNS, SEXES, abalone_rows, write_abalone_csv
from .public_clones import (
    CHECKOUTS_VARIABLE,
    EXAMPLES,
    PYTHON_SDK,
    UpstreamFile,
    write_upstream,
)

# The same bytes as at a75d5f25 (2024-06-20), before upstream moved it under a folder whose name
# begins with spaces; pinned at the commit the training cases use, so one clone serves both.
PREPROCESSING = UpstreamFile(
    EXAMPLES,
    "preprocessing.py",
    "   ml_ops/sm-pipelines_step_caching/artifacts/code/processing/preprocessing.py",
    "6faf32dfa4e8a90cf39258f202ec94c22aa555c41001dab542f0cf99f2765f4f",
)
EVALUATION = UpstreamFile(
    PYTHON_SDK,
    "evaluation.py",
    "tests/data/workflow/abalone/evaluation.py",
    "3195754cf73c46c3910d80f4f99c3867ca9e18ad1b6f97882622c7949a57bd75",
)
ROWS = 200
# np.split at 70% and 85% of the rows, as the script cuts them.
SPLIT_ROWS = {"train": 140, "validation": 30, "test": 30}
# The label, the seven measurements standardized, and a one-hot of the three sexes.
SPLIT_COLUMNS = 1 + (len(COLUMNS) - 2) + len(SEXES)
MSE_PATH = "regression_metrics.mse.value"
BACKENDS = pytest.mark.parametrize(
    ("compute", "compute_config"),
    [("local", {}), ("eks-gpu", {"gpus": 0})],
    ids=["local", "eks-path"],
)


def preprocess(
    root: Path, compute: str = "local", compute_config: Mapping[str, Any] | None = None
) -> Path:
    """Run the public ``preprocessing.py`` on our abalone rows; returns the folder of its splits."""
    code = write_upstream((PREPROCESSING,), root / "preprocessing")
    data = write_abalone_csv(root / "data", rows=ROWS)
    run_processing(
        source_dir=str(code),
        entry_point=PREPROCESSING.name,
        compute=compute,
        compute_config=compute_config,
        # The notebook's ProcessingInput(destination="/opt/ml/processing/input").
        inputs=[ProcessingInput("input", str(data), local_path="/opt/ml/processing/input")],
        outputs=[
            ProcessingOutput(split, local_path=f"/opt/ml/processing/{split}")
            for split in SPLIT_ROWS
        ],
        outputs_dir=root / "preprocessed",
    )
    return root / "preprocessed"


def read_rows(path: Path) -> list[list[float]]:
    with path.open(newline="") as handle:
        return [[float(value) for value in row] for row in csv.reader(handle)]


@BACKENDS
def test_public_preprocessing_splits_abalone_70_15_15_unchanged(
    tmp_path: Path, compute: str, compute_config: dict
) -> None:
    splits = preprocess(tmp_path, compute, compute_config)

    rows = {split: read_rows(splits / split / f"{split}.csv") for split in SPLIT_ROWS}
    assert {split: len(found) for split, found in rows.items()} == SPLIT_ROWS
    assert {len(row) for found in rows.values() for row in found} == {SPLIT_COLUMNS}
    # Label first: every row of ours went to exactly one split, with its rings.
    labels = sorted(row[0] for found in rows.values() for row in found)
    assert labels == sorted(float(row[-1]) for row in abalone_rows(ROWS))


@pytest.fixture(scope="module")
def abalone_splits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The public ``preprocessing.py``'s splits of our rows, made once on the local backend."""
    return preprocess(tmp_path_factory.mktemp("abalone"))


def sagemaker_xgboost_model(booster: Any, folder: Path) -> Path:
    """``model.tar.gz`` holding ``xgboost-model``, the Booster pickled (the XGBoost container's
    script mode before 1.3, which the public ``evaluation.py`` expects)."""
    folder.mkdir(parents=True)
    (folder / "xgboost-model").write_bytes(pickle.dumps(booster))
    archive = folder / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder / "xgboost-model", arcname="xgboost-model")
    return archive


@BACKENDS
def test_public_evaluation_reports_the_mse_of_our_xgboost_model(
    abalone_splits: Path, tmp_path: Path, compute: str, compute_config: dict
) -> None:
    xgboost = pytest.importorskip("xgboost", reason="needs xgboost: pip install -e '.[dev]'")
    import numpy as np

    train = np.array(read_rows(abalone_splits / "train" / "train.csv"))
    booster = xgboost.train(
        {"objective": "reg:squarederror", "max_depth": 3, "seed": 0},
        xgboost.DMatrix(train[:, 1:], label=train[:, 0]),
        num_boost_round=20,
    )
    model = sagemaker_xgboost_model(booster, tmp_path / "model")
    code = write_upstream((EVALUATION,), tmp_path / "evaluation")

    run_processing(
        source_dir=str(code),
        entry_point=EVALUATION.name,
        compute=compute,
        compute_config=compute_config,
        inputs=[
            ProcessingInput("model", str(model), local_path="/opt/ml/processing/model"),
            ProcessingInput(
                "test", str(abalone_splits / "test"), local_path="/opt/ml/processing/test"
            ),
        ],
        outputs=[ProcessingOutput("evaluation", local_path="/opt/ml/processing/evaluation")],
        outputs_dir=tmp_path / "evaluated",
    )

    reported = value_at(load_report(find_report(tmp_path / "evaluated")), MSE_PATH)
    test = np.array(read_rows(abalone_splits / "test" / "test.csv"))
    ours = float(np.mean((test[:, 0] - booster.predict(xgboost.DMatrix(test[:, 1:]))) ** 2))
    assert reported == pytest.approx(ours, rel=1e-6)
    # A model that learned the rings, so agreeing on its error says the rows lined up.
    assert ours < float(np.var(test[:, 0]))


def test_public_processing_scripts_are_skipped_in_one_line_naming_the_variable_without_clones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CHECKOUTS_VARIABLE, raising=False)

    with pytest.raises(pytest.skip.Exception) as skipped:
        preprocess(tmp_path)

    message = str(skipped.value)
    assert CHECKOUTS_VARIABLE in message and "\n" not in message
    assert EXAMPLES.url in message and PYTHON_SDK.url in message
    assert not (tmp_path / "preprocessed").exists()


@pytest.mark.parametrize("upstream", [PREPROCESSING, EVALUATION], ids=lambda u: u.name)
def test_public_processing_script_changed_by_one_byte_fails_naming_file_and_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: UpstreamFile
) -> None:
    # A stand-in at the pinned path (the real bytes are not committed), pinned to its own digest.
    checkouts = tmp_path / "checkouts"
    where = checkouts / upstream.repository.name / upstream.path
    where.parent.mkdir(parents=True)
    original = b'print("the pinned bytes")\n'
    where.write_bytes(original)
    pinned = dataclasses.replace(upstream, sha256=hashlib.sha256(original).hexdigest())
    monkeypatch.setenv(CHECKOUTS_VARIABLE, str(checkouts))
    assert (write_upstream((pinned,), tmp_path / "code") / upstream.name).read_bytes() == original

    changed = original.replace(b"pinned", b"pinnee")
    where.write_bytes(changed)
    with pytest.raises(pytest.fail.Exception) as failed:
        write_upstream((pinned,), tmp_path / "changed")

    message = str(failed.value)
    assert str(where) in message
    assert hashlib.sha256(changed).hexdigest() in message
    assert not (tmp_path / "changed" / upstream.name).exists()
