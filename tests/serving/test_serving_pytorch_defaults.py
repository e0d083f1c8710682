"""The PyTorch toolkit's defaults serve a TorchScript ``model.pt`` in eval mode under ``no_grad``,
and the serving code is imported only from the model's ``code/`` folder, never the submit directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from flywheel.components.errors import JobFailedError

Serve = Callable[..., str]  # the ``serve`` fixture (conftest.py)
SCRIPTS = Path(__file__).parent / "scripts"


class DropoutProbe(torch.nn.Module):
    """Sums each row through ``Dropout(p=1)`` (all zeros in train mode), beside the grad mode."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = torch.nn.Dropout(p=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.drop(x).sum(dim=1, keepdim=True)
        return torch.cat([total, torch.full_like(total, float(torch.is_grad_enabled()))], dim=1)


def torchscript_model(folder: Path) -> Path:
    """``model.pt`` saved in train mode: only the default predict_fn's ``eval()`` makes it sum."""
    folder.mkdir()
    probe = torch.jit.script(DropoutProbe())
    probe.train()
    probe.save(str(folder / "model.pt"))
    return folder


def test_pytorch_defaults_call_the_torchscript_model_in_eval_mode_without_grad(
    serve: Serve, tmp_path: Path
) -> None:
    model = torchscript_model(tmp_path / "model")
    out = serve(
        model, SCRIPTS / "pytorch_defaults", "inference.py", "1,2,3\n4,5,6\n",
        framework="pytorch", accept="application/json",
    )  # fmt: skip
    # Each row's sum (eval: no dropout), and 0.0: grad mode was off.
    assert out == "[[6.0, 0.0], [15.0, 0.0]]"


def test_pytorch_serving_imports_only_from_model_code_never_the_submit_directory(
    tmp_path: Path,
) -> None:
    model = tmp_path / "model"
    shutil.copytree(SCRIPTS / "pytorch_code" / "model_code", model / "code")
    (tmp_path / "request").write_text("1\n")
    command = [
        sys.executable, "-m", "flywheel.components.compute.local.serving",
        "--framework", "pytorch",
        "--source-dir", str(SCRIPTS / "pytorch_code" / "submit_decoy"),
        "--entry-point", "inference.py",
        "--model-dir", str(model),
        "--output-dir", str(tmp_path / "out"),
        str(tmp_path / "request"),
    ]  # fmt: skip
    subprocess.run(command, check=True, cwd=tmp_path, capture_output=True)
    assert (tmp_path / "out" / "request.out").read_text() == "model_dir/code"


def test_a_failed_code_requirements_install_names_pips_error_and_that_serving_never_started(
    serve: Serve, tmp_path: Path
) -> None:
    source = shutil.copytree(SCRIPTS / "pytorch_defaults", tmp_path / "source")
    (source / "requirements.txt").write_text("--no-index\nflywheel-no-such-package==1.0\n")
    with pytest.raises(JobFailedError) as failure:
        serve(
            torchscript_model(tmp_path / "model"),
            source,
            "inference.py",
            "1\n",
            framework="pytorch",
        )
    assert "installing code/requirements.txt failed, so the serving code never started" in str(
        failure.value
    )
    assert "No matching distribution found for flywheel-no-such-package" in str(failure.value)
