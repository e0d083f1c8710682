"""The scikit-learn container's defaults: CSV decoded by sagemaker-containers (cast to float32),
``model.predict``; a single CSV row is squeezed to 1-D and refused, as on SageMaker."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from flywheel.components.errors import JobFailedError

Serve = Callable[..., str]  # the ``serve`` fixture (conftest.py)
SOURCE = Path(__file__).parent / "scripts" / "pair"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    features = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    fitted = LinearRegression().fit(features, features @ np.array([3.0, -1.0]))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.pkl").write_bytes(pickle.dumps(fitted))
    return tmp_path / "model"


def test_sklearn_defaults_score_several_csv_rows_one_value_a_line(
    serve: Serve, model: Path
) -> None:
    out = serve(model, SOURCE, "inference.py", "1,1\n2,0\n", framework="sklearn")
    assert [float(v) for v in out.splitlines()] == pytest.approx([2.0, 6.0], abs=1e-5)


def test_sklearn_defaults_refuse_a_single_csv_row_as_the_container_does(
    serve: Serve, model: Path
) -> None:
    with pytest.raises(JobFailedError, match=r"decodes a single CSV row as a 1-D array"):
        serve(
            model, SOURCE, "inference.py", "1,1\n2,0\n",
            framework="sklearn", split_type="Line", batch_strategy="SingleRecord",
        )  # fmt: skip
