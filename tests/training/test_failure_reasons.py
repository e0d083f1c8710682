"""A failed script's reason points at the cause: a SyntaxError's file and line, and for a missing
framework, the Flywheel extra that brings it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flywheel.components.compute.backend import TrainingJobSpec
from flywheel.components.compute.local import LocalBackend, toolkit
from flywheel.components.errors import JobFailedError


@pytest.fixture
def job(one_script_job: Callable[..., TrainingJobSpec]) -> Callable[..., TrainingJobSpec]:
    """``job(script, **environment)``: the failing script's training job."""
    return lambda script, **environment: one_script_job(
        script, job_name="failing-job", environment=environment
    )


def failure(spec: TrainingJobSpec) -> str:
    with pytest.raises(JobFailedError) as failed:
        LocalBackend().train(spec, log=lambda _: None)
    return str(failed.value)


def test_a_syntax_error_names_its_file_and_line(job, tmp_path: Path) -> None:
    reason = failure(job("import os\n\ndef train(:\n    pass\n"))
    assert reason.endswith("SyntaxError: invalid syntax (train.py, line 3)")


def test_a_script_without_xgboost_fails_naming_the_xgboost_extra(job, tmp_path: Path) -> None:
    # An ``xgboost`` that cannot be imported stands for an install without the extra.
    blocker = tmp_path / "no-xgboost" / "xgboost"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'xgboost'\")\n"
    )
    spec = job("import xgboost\n", PYTHONPATH=str(blocker.parent))
    reason = failure(spec)
    assert "ModuleNotFoundError: No module named 'xgboost'" in reason
    assert (
        reason.splitlines()[-1] == "xgboost is not installed: pip install 'flywheel-mlops[xgboost]'"
    )


def test_each_missing_framework_in_the_table_names_its_extra(
    job, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(toolkit.FRAMEWORK_EXTRAS, "flywheel_surely_absent_framework", "gpu")
    reason = failure(job("import flywheel_surely_absent_framework.nn\n"))
    assert reason.splitlines()[-1] == (
        "flywheel_surely_absent_framework is not installed: pip install 'flywheel-mlops[gpu]'"
    )
