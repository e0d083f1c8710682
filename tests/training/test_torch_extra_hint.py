"""Without torch installed, the README's torch workload fails naming the extra to install."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from flywheel.components.compute.local import LocalBackend
from flywheel.components.contract.workload import load_workload
from flywheel.components.errors import JobFailedError


def test_torch_workload_without_torch_names_the_gpu_extra(tmp_path: Path) -> None:
    # A ``torch`` package that cannot be imported stands for an install without the extra.
    blocker = tmp_path / "no-torch" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\")\n")
    (tmp_path / "train.csv").write_text("smiles,pIC50\nCCO,5.0\n")
    workload = load_workload("builtin:qsar-torch")
    job = workload.training_job(
        job_name="torch-missing",
        channels={"train": str(tmp_path / "train.csv")},
        hyperparameters=workload.resolve_hyperparameters({}),
        output_location=str(tmp_path / "out"),
    )
    job = replace(job, environment={"PYTHONPATH": str(blocker.parent)})
    with pytest.raises(JobFailedError, match=r"pip install 'flywheel-mlops\[gpu\]'"):
        LocalBackend().train(job, log=lambda _: None)
