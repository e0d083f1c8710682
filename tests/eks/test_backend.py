"""The EKS backend trains in the pod: GPU count as SM_NUM_GPUS, torchrun for several GPUs."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from flywheel.components.backend import TrainingJobSpec
from flywheel.components.eks import EksGpuBackend, Placement, torchrun_launcher
from flywheel.components.metrics import MetricDefinition

SCRIPT = """\
import os
from pathlib import Path

rank = os.environ.get("RANK", "0")
print(f"rank{rank}_gpus={os.environ['SM_NUM_GPUS']}", flush=True)
print(f"rank{rank}_world={os.environ.get('WORLD_SIZE', '1')}", flush=True)
if rank == "0":
    Path(os.environ["SM_MODEL_DIR"], "model.txt").write_text("trained")
"""


def spec(tmp_path: Path) -> TrainingJobSpec:
    source = tmp_path / "code"
    source.mkdir()
    (source / "train.py").write_text(textwrap.dedent(SCRIPT))
    (tmp_path / "train.csv").write_text("x\n1\n")
    return TrainingJobSpec(
        job_name="eks-job",
        source_dir=str(source),
        entry_point="train.py",
        channels={"train": str(tmp_path / "train.csv")},
        hyperparameters={},
        output_location=str(tmp_path / "out"),
        metric_definitions=tuple(
            MetricDefinition(name, f"{name}=([0-9]+)")
            for name in ("rank0_gpus", "rank0_world", "rank1_world")
        ),
    )


@pytest.mark.parametrize(("gpus", "launcher"), [(0, ()), (1, ())])
def test_one_gpu_or_none_runs_the_script_directly(gpus: int, launcher: tuple) -> None:
    assert torchrun_launcher(gpus) == launcher


def test_several_gpus_start_one_process_per_gpu_under_torchrun() -> None:
    assert torchrun_launcher(4, python="/usr/bin/python3") == (
        "/usr/bin/python3",
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=4",
    )


def test_script_sees_the_gpu_count_of_the_placement(tmp_path: Path) -> None:
    result = EksGpuBackend(Placement(gpus=1)).train(spec(tmp_path), log=lambda line: None)
    assert result.metrics == {"rank0_gpus": 1.0, "rank0_world": 1.0}
    assert Path(result.model_artifact).is_file()


def test_two_gpus_train_data_parallel_with_two_ranks(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    result = EksGpuBackend(Placement(gpus=2), python=sys.executable).train(
        spec(tmp_path), log=lambda line: None
    )
    assert result.metrics == {"rank0_gpus": 2.0, "rank0_world": 2.0, "rank1_world": 2.0}
