"""``transform_fn``, when a script defines it, is the only handler called; beside ``input_fn``,
``predict_fn`` or ``output_fn`` it is refused, in each container's own words."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flywheel.components.errors import JobFailedError

Serve = Callable[..., str]  # the ``serve`` fixture (conftest.py)
SOURCE = Path(__file__).parent / "scripts" / "transform_fn"


@pytest.mark.parametrize("framework", [None, "sklearn", "xgboost"])
def test_a_constant_transform_fn_probe_scores_every_row_with_that_constant(
    serve: Serve, tmp_path: Path, framework: str | None
) -> None:
    (tmp_path / "model").mkdir()
    out = serve(tmp_path / "model", SOURCE, "constant.py", "1,2\n3,4\n5,6\n", framework=framework)
    assert out.splitlines() == ["42", "42", "42"]


@pytest.mark.parametrize(
    ("framework", "message"),
    [
        # sagemaker-inference transformer.py, also vendored by the PyTorch toolkit.
        (None, "in conjunction with input_fn, predict_fn, and/or output_fn implementation"),
        # sagemaker_sklearn_container / sagemaker_xgboost_container serving.py.
        ("sklearn", "Cannot use transform_fn implementation with input_fn, predict_fn"),
        ("xgboost", "Cannot use transform_fn implementation with input_fn, predict_fn"),
    ],
)
def test_transform_fn_beside_predict_fn_is_refused_as_the_container_refuses_it(
    serve: Serve, tmp_path: Path, framework: str | None, message: str
) -> None:
    (tmp_path / "model").mkdir()
    with pytest.raises(JobFailedError, match=message):
        serve(tmp_path / "model", SOURCE, "with_predict_fn.py", "1,2\n", framework=framework)
