"""A workload naming a framework whose package is not installed fails in one line naming the extra."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flywheel.components.errors import JobFailedError

Serve = Callable[..., str]  # the ``serve`` fixture (conftest.py)
SCRIPTS = Path(__file__).parent / "scripts"


@pytest.mark.parametrize(
    ("framework", "package", "source", "extra"),
    [
        ("xgboost", "xgboost", "xgboost_model_fn_only", "xgboost"),
        ("pytorch", "torch", "pytorch_defaults", "gpu"),
    ],
)
def test_missing_framework_package_names_the_extra_to_install(
    serve: Serve, tmp_path: Path, framework: str, package: str, source: str, extra: str
) -> None:
    # A package that cannot be imported stands for an install without the extra.
    blocker = tmp_path / "blocked" / package
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(f"raise ModuleNotFoundError(name={package!r})\n")
    (tmp_path / "model").mkdir()
    entry = next(p.name for p in (SCRIPTS / source).glob("*.py"))
    with pytest.raises(JobFailedError, match=rf"pip install 'flywheel-mlops\[{extra}\]'$"):
        serve(
            tmp_path / "model", SCRIPTS / source, entry, "1\n",
            framework=framework, environment={"PYTHONPATH": str(blocker.parent)},
        )  # fmt: skip
