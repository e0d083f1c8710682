"""What does a local processing job cost beyond its script, and do its hosts really run in parallel?

Prints, from one run on this machine (best of a few repetitions; noise only adds time):
* the wall time of the trivial script run bare (``python trivial.py``);
* local processing's overhead per job on it: ``LocalProcessor.process`` minus the bare run
  (private /opt/ml, packing the code, runproc.sh, config files, collecting the output);
* local training's overhead per job on the same kind of script (``LocalTrainer.train``, which
  runs SageMaker's training toolkit), to set the first number beside;
* a CPU-bound script over 2 objects: 2 hosts with ``ShardedByS3Key`` (one object each) against
  1 host with both, and their ratio. Target: at most 0.65 (two hosts, on two free cores);
* the same work as two bare processes, side by side against one after the other: the best
  ratio this machine allows at the moment (a busy machine cannot reach 0.5).

Run with ``.venv/bin/python benchmarks/processing_overhead.py``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flywheel.components.compute.backend import TrainingJobSpec
from flywheel.components.compute.local.processing import LocalProcessor
from flywheel.components.compute.local.training import LocalTrainer
from flywheel.components.contract.processing import (
    ProcessingInput,
    ProcessingJobSpec,
    ProcessingOutput,
)

REPETITIONS = 3
TARGET_RATIO = 0.65
# Rounds of SHA-256 over 1 KiB per object: one to two seconds of one core.
ROUNDS_PER_OBJECT = 700_000

TRIVIAL = """\
import pathlib
for folder in ("/opt/ml/processing/output/result", "/opt/ml/model"):
    if pathlib.Path(folder).is_dir():
        (pathlib.Path(folder) / "done.txt").write_text("done")
"""
BURN = """\
import hashlib, sys
def burn(rounds):
    block = bytes(1024)
    digest = block
    for _ in range(rounds):
        digest = hashlib.sha256(digest + block).digest()
    return digest
if __name__ == "__main__":
    burn(int(sys.argv[1]))
"""
CPU_BOUND = """\
import pathlib
from burn import burn
for part in sorted(pathlib.Path("/opt/ml/processing/input/parts").iterdir()):
    digest = burn(int(part.read_text()))
    (pathlib.Path("/opt/ml/processing/output/result") / part.name).write_bytes(digest)
"""


def best_seconds(run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(REPETITIONS):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def write_script(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder


def processing_spec(
    code: Path, scratch: Path, *, instance_count: int, **fields
) -> ProcessingJobSpec:
    return ProcessingJobSpec(
        job_name=f"bench-{instance_count}",
        source_dir=str(code),
        entry_point="job.py",
        outputs=(ProcessingOutput("result", destination=str(scratch / f"out-{instance_count}")),),
        instance_count=instance_count,
        **fields,
    )


def bare_processes(burn: Path, *, parallel: bool) -> None:
    """The CPU-bound work for two objects as two bare processes, side by side or in turn."""
    command = [sys.executable, str(burn), str(ROUNDS_PER_OBJECT)]
    if parallel:
        running = [subprocess.Popen(command) for _ in range(2)]
        for process in running:
            process.wait()
    else:
        for _ in range(2):
            subprocess.run(command, check=True)


def main() -> None:
    quiet = lambda _line: None  # noqa: E731
    with tempfile.TemporaryDirectory() as temporary:
        scratch = Path(temporary)
        trivial = write_script(scratch / "trivial", "job.py", TRIVIAL)
        bare = best_seconds(
            lambda: subprocess.run([sys.executable, str(trivial / "job.py")], check=True)
        )
        processor = LocalProcessor(output_root=scratch / "outputs")
        processing = best_seconds(
            lambda: processor.process(processing_spec(trivial, scratch, instance_count=1), quiet)
        )
        training_spec = TrainingJobSpec(
            job_name="bench-training",
            source_dir=str(trivial),
            entry_point="job.py",
            channels={},
            hyperparameters={},
            output_location=str(scratch / "models"),
        )
        training = best_seconds(lambda: LocalTrainer().train(training_spec, quiet))

        parts = scratch / "parts"
        parts.mkdir()
        for index in range(2):
            (parts / f"part-{index}").write_text(str(ROUNDS_PER_OBJECT))
        cpu_bound = write_script(scratch / "cpu_bound", "job.py", CPU_BOUND)
        burn = write_script(cpu_bound, "burn.py", BURN) / "burn.py"
        bare_ratio = best_seconds(lambda: bare_processes(burn, parallel=True)) / best_seconds(
            lambda: bare_processes(burn, parallel=False)
        )
        sharded = (ProcessingInput("parts", str(parts), distribution="ShardedByS3Key"),)
        one_host = best_seconds(
            lambda: processor.process(
                processing_spec(cpu_bound, scratch, instance_count=1, inputs=sharded), quiet
            )
        )
        two_hosts = best_seconds(
            lambda: processor.process(
                processing_spec(cpu_bound, scratch, instance_count=2, inputs=sharded), quiet
            )
        )

    ratio = two_hosts / one_host
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(f"trivial script run bare (python job.py):            {bare:6.3f} s")
    print(f"local processing overhead per job (1 host):         {processing - bare:6.3f} s")
    print(f"local training overhead per job (training toolkit): {training - bare:6.3f} s")
    print(f"CPU-bound, 2 objects on 1 host:                     {one_host:6.3f} s")
    print(f"CPU-bound, 2 objects sharded over 2 hosts:          {two_hosts:6.3f} s")
    print(
        f"ratio 2 hosts / 1 host:                             {ratio:6.2f} "
        f"({verdict} the <= {TARGET_RATIO} target)"
    )
    print(
        f"same work, 2 bare processes side by side / in turn: {bare_ratio:6.2f} (this machine now)"
    )


if __name__ == "__main__":
    main()
