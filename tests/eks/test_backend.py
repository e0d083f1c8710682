"""The EKS backend trains in the pod under the toolkit: its GPU count, torchrun for several GPUs."""

from __future__ import annotations

import shutil
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flywheel.components.compute.backend import StopJob, TrainingJobSpec
from flywheel.components.compute.eks import EksGpuBackend, Placement
from flywheel.components.contract.metrics import MetricDefinition

SCRIPT = """\
import os
import sys
from pathlib import Path

rank = os.environ.get("RANK", "0")
print(f"rank{rank}_gpus={os.environ['SM_NUM_GPUS']}", flush=True)
print(f"rank{rank}_world={os.environ.get('WORLD_SIZE', '1')}", flush=True)
print(f"rank{rank}_epochs={sys.argv[sys.argv.index('--epochs') + 1]}", flush=True)
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
        hyperparameters={"epochs": 3},
        output_location=str(tmp_path / "out"),
        metric_definitions=tuple(
            MetricDefinition(name, f"{name}=([0-9]+)")
            for name in ("rank0_gpus", "rank0_world", "rank1_world", "rank0_epochs", "rank1_epochs")
        ),
    )


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has GPUs")
def test_script_sees_the_gpus_the_toolkit_counts_and_its_hyperparameters(tmp_path: Path) -> None:
    # The toolkit counts what ``nvidia-smi`` lists: none here, whatever the placement asked for.
    result = EksGpuBackend(Placement(gpus=1)).train(spec(tmp_path), log=lambda line: None)
    assert result.metrics == {"rank0_gpus": 0.0, "rank0_world": 1.0, "rank0_epochs": 3.0}
    assert Path(result.model_artifact).is_file()


def test_two_gpus_train_data_parallel_with_two_ranks_under_torchrun(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    lines: list[str] = []
    result = EksGpuBackend(Placement(gpus=2), python=sys.executable).train(
        spec(tmp_path), log=lines.append
    )
    assert result.metrics["rank0_world"] == result.metrics["rank1_world"] == 2.0
    assert result.metrics["rank0_epochs"] == result.metrics["rank1_epochs"] == 3.0
    assert any("torchrun" in line and "--nproc_per_node 2" in line for line in lines)


# Each rank writes its pid, says it is ready, then trains "forever".
SLOW_RANKS = """\
import os, time
from pathlib import Path

rank = os.environ.get("RANK", "0")
Path(os.environ["RANK_PIDS"], rank).write_text(str(os.getpid()))
print(f"rank{rank}_ready=1", flush=True)
time.sleep(120)
"""


def test_a_stop_from_the_log_stops_torchrun_and_every_rank_in_the_pod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a pruned tuning trial asks of its pod (``steps.trial_pruning``)."""
    pytest.importorskip("torch")
    psutil = pytest.importorskip("psutil")
    job = spec(tmp_path)
    Path(job.source_dir, "train.py").write_text(SLOW_RANKS)
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("RANK_PIDS", str(pids))
    ready: set[str] = set()

    def stop_when_both_ranks_run(line: str) -> None:
        if line.startswith(("rank0_ready", "rank1_ready")):
            ready.add(line[:5])
        if len(ready) == 2:
            raise StopJob("pruned")

    started = time.monotonic()
    with pytest.raises(StopJob):
        EksGpuBackend(Placement(gpus=2), python=sys.executable).train(
            job, log=stop_when_both_ranks_run
        )

    assert time.monotonic() - started < 60
    ranks = [int(path.read_text()) for path in pids.iterdir()]
    assert len(ranks) == 2
    for pid in ranks:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
