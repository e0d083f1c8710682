"""What does running the training pipeline through kfp.local cost over calling its steps directly?

Prints, from one run on this machine:
* the wall time of ``flywheel run training --no-cache`` (a fresh process, every task executed);
* the wall time of the same steps called one after another in one fresh process;
* their ratio;
* the one-off start-up cost of the CLI (importing kfp, which imports its API client),
* the framework overhead per task once started: (pipeline - direct - start-up) / tasks.
  Target: under 0.15 s per task; and
* an unchanged re-run (the registry as the first run left it, so nothing is started) against the
  first run of the same inputs. Target: at most 10% of the first run.

Run with ``make benchmark`` or ``.venv/bin/python benchmarks/local_overhead.py``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flywheel.components.contract.workload import load_workload
from flywheel.components.registry import open_registry
from flywheel.components.steps.champion import find_champion
from flywheel.components.steps.evaluate import evaluate_model
from flywheel.components.steps.gate import decide_promotion, promote_model
from flywheel.components.steps.prepare import prepare_data
from flywheel.components.steps.register import register_model
from flywheel.components.steps.train import train_model
from flywheel.pipelines.catalog import task_names
from flywheel.pipelines.training import DEFAULT_SOURCE, training_pipeline
from flywheel.pipelines.training_run import TrainingRequest

REPO = Path(__file__).resolve().parents[1]
WORKLOAD = str(REPO / "examples" / "qsar" / "workload.yaml")
TARGET_SECONDS_PER_TASK = 0.15
TARGET_CACHED_SHARE = 0.10
REPETITIONS = 3
# The same inputs `flywheel run training` uses by default.
DEFAULTS = TrainingRequest()


def pipeline_seconds(scratch: Path, *options: str) -> float:
    command = [
        sys.executable,
        "-m",
        "flywheel.pipelines.cli",
        "run",
        "training",
        *options,
        "--workload",
        WORKLOAD,
        "--registry",
        str(scratch / "registry"),
        "--pipeline-root",
        str(scratch / "runs"),
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, capture_output=True)
    return time.perf_counter() - started


def import_seconds(module: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, cwd=REPO)
    return time.perf_counter() - started


def direct_seconds(scratch: Path) -> float:
    """The same steps, in a fresh process of their own, with the same inputs."""
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--direct", str(scratch)], check=True, cwd=REPO)
    return time.perf_counter() - started


def run_steps_directly(scratch: Path) -> None:
    quiet = lambda _line: None  # noqa: E731
    workload = load_workload(WORKLOAD)
    train, test = scratch / "train.csv", scratch / "test.csv"
    prepare_data(
        source=DEFAULT_SOURCE,
        workload_path=WORKLOAD,
        batch_count=DEFAULTS.batch_count,
        training_batches=DEFAULTS.training_batches,
        test_fraction=DEFAULTS.test_fraction,
        seed=DEFAULTS.seed,
        order_by=DEFAULTS.order_by,
        train_path=train,
        test_path=test,
        batches_dir=scratch / "batches",
    )
    model = scratch / "model.tar.gz"
    trained = train_model(
        workload_path=WORKLOAD,
        compute="local",
        hyperparameters={},
        train_path=train,
        test_path=test,
        model_path=model,
        log=quiet,
    )
    evaluation = evaluate_model(
        workload_path=WORKLOAD, compute="local", model_path=model, test_path=test, log=quiet
    )
    registry = str(scratch / "registry")
    registration = register_model(
        registry_uri=registry,
        model_name=workload.name,
        model_path=model,
        metrics=evaluation.metrics,
        hyperparameters=trained.hyperparameters,
        lineage={},
    )
    champion_metrics, champion_version, champion_sha256 = None, None, None
    if open_registry(registry).champion(workload.name) is not None:
        champion_model = scratch / "champion.tar.gz"
        champion = find_champion(
            registry_uri=registry, model_name=workload.name, model_path=champion_model
        )
        champion_version, champion_sha256 = champion.version, champion.model_sha256
        champion_metrics = evaluate_model(
            workload_path=WORKLOAD,
            compute="local",
            model_path=champion_model,
            test_path=test,
            log=quiet,
        ).metrics
    decision = decide_promotion(
        candidate_version=registration.version.version,
        candidate_sha256=registration.version.model_sha256,
        candidate_metrics=evaluation.metrics,
        champion_version=champion_version,
        champion_sha256=champion_sha256,
        champion_metrics=champion_metrics,
        metric=workload.objective_metric,
        goal=workload.objective_goal,
        margin=0.0,
    )
    if decision.promote:
        promote_model(
            registry_uri=registry,
            model_name=workload.name,
            version=registration.version.version,
            compared_with=champion_version,
            reason=decision.reason,
        )


def main() -> None:
    tasks = len(task_names(training_pipeline))
    # Best of a few repetitions: a 2-core machine's noise is one-sided (it only adds time).
    through_pipeline = direct = start_up = first_run = cached_run = float("inf")
    for _ in range(REPETITIONS):
        with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
            through_pipeline = min(through_pipeline, pipeline_seconds(Path(first), "--no-cache"))
            direct = min(direct, direct_seconds(Path(second)))
        with tempfile.TemporaryDirectory() as cached:
            first_run = min(first_run, pipeline_seconds(Path(cached)))
            cached_run = min(cached_run, pipeline_seconds(Path(cached)))
        start_up = min(
            start_up,
            # What a run loads beyond its steps: kfp, the runner and the pipeline it builds.
            import_seconds("flywheel.pipelines.local_runner, flywheel.pipelines.training")
            - import_seconds("flywheel.components.steps.train"),
        )
    overhead = (through_pipeline - direct - start_up) / tasks
    verdict = "meets" if overhead < TARGET_SECONDS_PER_TASK else "MISSES"
    print(f"flywheel run training (kfp.local, {tasks} tasks):   {through_pipeline:6.2f} s")
    print(f"same steps called directly in one process:        {direct:6.2f} s")
    print(f"ratio pipeline / direct:                          {through_pipeline / direct:6.2f}x")
    print(f"CLI start-up beyond the direct run's (kfp import): {start_up:6.2f} s, once per run")
    print(
        f"framework overhead per task:                      {overhead:6.3f} s "
        f"({verdict} the {TARGET_SECONDS_PER_TASK} s target)"
    )
    share = cached_run / first_run
    verdict = "meets" if share <= TARGET_CACHED_SHARE else "MISSES"
    print(f"first run with the cache on:                      {first_run:6.2f} s")
    print(
        f"unchanged re-run (nothing started):               {cached_run:6.2f} s "
        f"= {share:.0%} of the first ({verdict} the {TARGET_CACHED_SHARE:.0%} target)"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--direct"]:
        run_steps_directly(Path(sys.argv[2]))
    else:
        main()
