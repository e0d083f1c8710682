"""What does a tuning trial cost on kfp.local, and how many trials an hour does a local search run?

Prints, from one run on this machine:
* a trial through kfp.local (its ``train_model`` task, one trial at a time) against the same
  train step called directly in one process, per trial, and their ratio. Goal: at most 1.3x. The pipeline's per-trial time is marginal, (N trials - 1 trial) /
  (N - 1), so kfp.local's start-up and ``prepare_data`` drop out; the direct one is the mean of N
  calls;
* trials per hour of ``flywheel run tuning`` with ``max_parallel_jobs: 2``, also marginal: a
  search of more trials against one of 2 (one round), so preparing the data and the gate after
  the search drop out, while each round's suggest and record tasks stay in. Beside it, the most
  two parallel trials could give on two free cores (3600 / trial seconds x 2), and the ratio.

Every trial runs a 2-second script: it predicts the mean label, spins one core until 2 s have
passed, and reports an objective that depends on the searched values.

Run with ``.venv/bin/python benchmarks/tuning.py [--trials 4] [--search-trials 6]``; about two
minutes on two cores.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "qsar"
TRIAL_SECONDS = 2.0
GOAL_RATIO = 1.3
PARALLEL = 2
# The trial: a stdlib-only script that predicts the mean training label, spins one core until
# TRIAL_SECONDS have passed, and reports an objective the searched values move (best near 100
# trees and a leaf of 2), so the search has something to find. It serves its model too.
TRIAL_SCRIPT = f"""\
import csv
import io
import json
import math
import os
import time
from pathlib import Path


def _labels(channel):
    folder = Path(os.environ[f"SM_CHANNEL_{{channel.upper()}}"])
    return [float(row["pIC50"]) for f in sorted(folder.glob("*.csv")) for row in csv.DictReader(f.open())]


def train():
    started = time.perf_counter()
    config = Path(os.environ["SM_INPUT_CONFIG_DIR"]) / "hyperparameters.json"
    params = {{k: json.loads(v) for k, v in json.loads(config.read_text()).items()}}
    labels = _labels("train")
    mean = sum(labels) / len(labels)
    truth = _labels("test")
    rmse = math.sqrt(sum((t - mean) ** 2 for t in truth) / len(truth))
    penalty = 0.1 * abs(math.log(int(params["n_estimators"]) / 100))
    penalty += 0.05 * abs(int(params["min_samples_leaf"]) - 2)
    (Path(os.environ["SM_MODEL_DIR"]) / "model.json").write_text(json.dumps({{"mean": mean}}))
    while time.perf_counter() - started < {TRIAL_SECONDS}:
        pass
    print(f"train_rmse={{rmse:.4f}}", flush=True)
    print(f"test_rmse={{rmse + penalty:.4f}}", flush=True)


def model_fn(model_dir):
    return json.loads((Path(model_dir) / "model.json").read_text())["mean"]


def input_fn(body, content_type):
    return [row[0] for row in csv.reader(io.StringIO(body)) if row]


def predict_fn(smiles, mean):
    return [mean] * len(smiles)


if __name__ == "__main__":
    train()
"""


def write_workload(folder: Path, max_jobs: int) -> str:
    """The tuning example with the 2-second trial script, searching ``max_jobs`` trials, 2 at once."""
    folder.mkdir(parents=True)
    (folder / "trial.py").write_text(TRIAL_SCRIPT)
    workload = yaml.safe_load((EXAMPLE / "workload-tuning.yaml").read_text())
    workload["entry_point"] = "trial.py"
    workload["tuning"].update(
        ranges={
            "n_estimators": {"type": "integer", "min": 20, "max": 300, "scaling": "Logarithmic"},
            "min_samples_leaf": {"type": "integer", "min": 1, "max": 4},
        },
        max_jobs=max_jobs,
        max_parallel_jobs=PARALLEL,
    )
    path = folder / "workload.yaml"
    path.write_text(yaml.safe_dump(workload, sort_keys=False))
    return str(path)


def trial_list(count: int) -> list[dict[str, Any]]:
    """Trials as ``suggest_trials`` hands them to ``dsl.ParallelFor``, each its own seed."""
    return [
        {"number": n, "hyperparameters": {"n_estimators": 20, "min_samples_leaf": 1, "seed": n}}
        for n in range(count)
    ]


def trials_pipeline() -> Any:
    """Prepare the data, then each trial's task, one trial at a time."""
    from kfp import dsl

    from flywheel.components import prepare_data, train_model
    from flywheel.pipelines.defaults import DEFAULT_SOURCE

    @dsl.pipeline(name="tuning-trials-benchmark")
    def pipeline(workload: str, trials: list) -> None:
        prepared = prepare_data(
            source=DEFAULT_SOURCE,
            workload=workload,
            batch_count=8,
            training_batches=3,
            test_fraction=0.2,
            seed=7,
            order_by="",
            source_fingerprint="",
            compute="local",
            compute_config={},
            code_fingerprint="",
        )
        with dsl.ParallelFor(trials, parallelism=1) as trial:
            train_model(
                workload=workload,
                compute="local",
                compute_config={},
                hyperparameters=trial.hyperparameters,
                code_fingerprint="",
                train=prepared.outputs["train"],
                test=prepared.outputs["test"],
            )

    return pipeline


def per_trial_on_kfp_local(scratch: Path, workload: str, count: int) -> float:
    """Seconds a trial adds to a kfp.local run: (count trials - 1 trial) / (count - 1)."""
    import contextlib
    import io

    from kfp import local

    from flywheel.pipelines.task_processes import task_processes

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(scratch / "kfp-root"),
        enable_caching=False,
        raise_on_error=True,
    )
    pipeline = trials_pipeline()
    seconds = {}
    # Tasks start as Flywheel's runs start them: forked from the warm interpreter, each in a
    # session of its own (``task_processes``), not as bare kfp.local would.
    with task_processes():
        # A first run of one trial is not timed: the warm interpreter's imports are a run's, not
        # a trial's, and would otherwise fall on the smaller run alone.
        for n in (1, 1, count):
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # kfp.local streams every task's log
                pipeline(workload=workload, trials=trial_list(n))
            seconds[n] = time.perf_counter() - started
    return (seconds[count] - seconds[1]) / (count - 1)


def per_trial_directly(scratch: Path, workload: str, count: int) -> float:
    """Seconds per trial of the train step, called in this process."""
    from flywheel.components.steps.prepare import prepare_data
    from flywheel.components.steps.train import train_model
    from flywheel.pipelines.defaults import DEFAULT_SOURCE

    train, test = scratch / "train.csv", scratch / "test.csv"
    prepare_data(
        source=DEFAULT_SOURCE,
        workload_path=workload,
        batch_count=8,
        training_batches=3,
        test_fraction=0.2,
        seed=7,
        order_by="",
        train_path=train,
        test_path=test,
        batches_dir=scratch / "batches",
    )
    started = time.perf_counter()
    for trial in trial_list(count):
        train_model(
            workload_path=workload,
            compute="local",
            hyperparameters=trial["hyperparameters"],
            train_path=train,
            test_path=test,
            model_path=scratch / f"model-{trial['number']}.tar.gz",
            log=lambda _line: None,
        )
    return (time.perf_counter() - started) / count


def search_seconds(scratch: Path, workload: str) -> float:
    """Wall time of ``flywheel run tuning`` on ``workload``, every task run, in a fresh process."""
    command = [
        sys.executable,
        "-m",
        "flywheel.pipelines.cli",
        "--home",
        str(scratch / "home"),
        "run",
        "tuning",
        "--no-cache",
        "--workload",
        workload,
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=scratch, capture_output=True, env=dict(os.environ))
    return time.perf_counter() - started


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trials", type=int, default=4, help="trials in the kfp.local against direct comparison"
    )
    parser.add_argument(
        "--search-trials",
        type=int,
        default=6,
        help=f"max_jobs of the larger search (the smaller one is {PARALLEL}: one round)",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.trials < 2 or args.search_trials <= PARALLEL:
        raise SystemExit(f"--trials must be 2 or more, --search-trials more than {PARALLEL}")
    with tempfile.TemporaryDirectory(prefix="flywheel-tuning-", dir=args.workdir) as temporary:
        scratch = Path(temporary)
        workload = write_workload(scratch / "workload", args.search_trials)
        (scratch / "direct").mkdir()
        direct = per_trial_directly(scratch / "direct", workload, args.trials)
        through_kfp = per_trial_on_kfp_local(scratch, workload, args.trials)
        small = write_workload(scratch / "one-round", PARALLEL)
        runs = {}
        for name, path in (("small", small), ("large", workload)):
            (scratch / name).mkdir()
            runs[name] = search_seconds(scratch / name, path)
    ratio = through_kfp / direct
    verdict = "meets" if ratio <= GOAL_RATIO else "MISSES"
    added = args.search_trials - PARALLEL
    per_hour = 3600 * added / (runs["large"] - runs["small"])
    ideal = 3600 / TRIAL_SECONDS * PARALLEL
    print(f"trial script: {TRIAL_SECONDS:g} s of one core")
    print(f"trial on kfp.local (its train task):            {through_kfp:6.2f} s")
    print(f"same steps called directly in one process:      {direct:6.2f} s")
    print(
        f"ratio kfp.local / direct, per trial:            {ratio:6.2f}x "
        f"({verdict} the {GOAL_RATIO}x goal)"
    )
    print(
        f"flywheel run tuning, {PARALLEL} trials ({PARALLEL} at once):     {runs['small']:6.1f} s"
    )
    print(
        f"flywheel run tuning, {args.search_trials} trials ({PARALLEL} at once):     "
        f"{runs['large']:6.1f} s"
    )
    print(f"trials per hour, marginal ({added} more trials):     {per_hour:6.0f}")
    print(
        f"against {PARALLEL} trials of {TRIAL_SECONDS:g} s at once, no overhead: "
        f"{ideal:6.0f} per hour = {per_hour / ideal:.2f}x of it"
    )


if __name__ == "__main__":
    main()
