"""An XGBoost script that defines only ``model_fn`` is served with the XGBoost container's
defaults: the request decoded into a ``DMatrix`` (text/csv, text/libsvm), ``booster.predict``."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from flywheel.components.errors import JobFailedError

Serve = Callable[..., str]  # the ``serve`` fixture (conftest.py)
SOURCE = Path(__file__).parent / "scripts" / "xgboost_model_fn_only"
ROWS = np.array([[1.0, 0.0, 3.0], [0.0, 2.0, 1.0], [4.0, 1.0, 0.0], [2.0, 2.0, 2.0]])


@pytest.fixture
def booster(tmp_path: Path) -> xgb.Booster:
    """A booster trained here, pickled as ``xgboost-model`` the way the script's training saves it."""
    labels = ROWS @ np.array([1.0, -2.0, 0.5])
    trained = xgb.train({"max_depth": 2, "eta": 0.5}, xgb.DMatrix(ROWS, label=labels), 5)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "xgboost-model").write_bytes(pickle.dumps(trained))
    return trained


def scores(text: str) -> list[float]:
    return [float(line) for line in text.splitlines() if line.strip()]


def expected(booster: xgb.Booster) -> list[float]:
    return booster.predict(xgb.DMatrix(ROWS)).tolist()


def test_model_fn_only_xgboost_script_is_scored_from_csv_through_a_dmatrix(
    serve: Serve, booster: xgb.Booster, tmp_path: Path
) -> None:
    body = "".join(",".join(str(v) for v in row) + "\n" for row in ROWS)
    out = serve(
        tmp_path / "model", SOURCE, "abalone_like.py", body,
        framework="xgboost", split_type="Line",
    )  # fmt: skip
    assert scores(out) == pytest.approx(expected(booster), rel=1e-6)


def test_model_fn_only_xgboost_script_is_scored_from_libsvm(
    serve: Serve, booster: xgb.Booster, tmp_path: Path
) -> None:
    # A label first, then 1-based index:value pairs, as libsvm files and the container have them.
    body = "".join(
        "0 " + " ".join(f"{i + 1}:{v}" for i, v in enumerate(row)) + "\n" for row in ROWS
    )
    out = serve(
        tmp_path / "model", SOURCE, "abalone_like.py", body,
        framework="xgboost", content_type="text/libsvm",
    )  # fmt: skip
    assert scores(out) == pytest.approx(expected(booster), rel=1e-6)


def test_xgboost_defaults_refuse_json_as_the_container_does(
    serve: Serve, booster: xgb.Booster, tmp_path: Path
) -> None:
    with pytest.raises(JobFailedError, match=r"XGBoost container handles .*'text/libsvm'"):
        serve(
            tmp_path / "model", SOURCE, "abalone_like.py", "[[1, 2, 3]]",
            framework="xgboost", content_type="application/json",
        )  # fmt: skip


def test_a_whole_csv_file_with_its_trailing_newline_fails_as_in_the_xgboost_container(
    serve: Serve, booster: xgb.Booster, tmp_path: Path
) -> None:
    with pytest.raises(JobFailedError, match=r"refuses a leading or trailing newline"):
        serve(tmp_path / "model", SOURCE, "abalone_like.py", "1,0,3\n0,2,1\n", framework="xgboost")


def test_the_same_script_without_a_framework_fails_as_it_did_before(
    serve: Serve, booster: xgb.Booster, tmp_path: Path
) -> None:
    with pytest.raises(JobFailedError, match=r"DMatrix"):
        serve(tmp_path / "model", SOURCE, "abalone_like.py", "1,0,3\n0,2,1\n", split_type="Line")
