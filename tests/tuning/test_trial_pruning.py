"""Early stopping stops a local trial while it trains, as Katib's ``medianstop`` stops one.

A real script, run by the train step under the training toolkit, prints its objective epoch by
epoch. The round's journal holds three completed trials from an earlier round; the trial is judged
against them value by value as its log shows them, stopped where the median rule says so, and its
round's record step records it pruned at that step, as decided.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import time
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from flywheel.components.contract.tuning import ParameterRange, TuningSpec
from flywheel.components.contract.workload import load_workload
from flywheel.components.errors import InvalidSpecError
from flywheel.components.steps.train import TrainedModel, train_model
from flywheel.components.steps.trial_pruning import judge_for
from flywheel.components.steps.tuning_rounds import (
    TrialCurves,
    TrialModel,
    record_trials,
    tuning_of,
)
from flywheel.components.steps.tuning_study import (
    STUDY_NAME,
    RunningTrial,
    outcome_from_metrics,
    record_round,
    suggest_round,
)
from flywheel.pipelines.tuning_run import trial_line, trials_table

# Prints ``epoch e: loss=offset + 1/e`` each epoch, sleeping between them; marks its start (with
# its pid) and, after its last epoch, its end.
SCRIPT = """\
import argparse, os, time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--offset", type=float, default=0.0)
parser.add_argument("--epochs", type=int, default=4)
parser.add_argument("--seconds_per_epoch", type=float, default=0.1)
args, _ = parser.parse_known_args()
marks = Path(os.environ["TRIAL_MARKS"])
(marks / f"started-{args.offset}").write_text(str(os.getpid()))
for epoch in range(1, args.epochs + 1):
    print(f"epoch {epoch}: loss={args.offset + 1.0 / epoch:.4f}", flush=True)
    time.sleep(args.seconds_per_epoch)
Path(os.environ["SM_MODEL_DIR"], "model.txt").write_text("trained")
(marks / f"finished-{args.offset}").write_text("done")
"""

WORKLOAD = """\
name: slow-trial
entry_point: train.py
data: {id_column: id, feature_columns: [x], label_column: y}
hyperparameters:
  offset: {type: float, default: 0.0}
  epochs: {type: int, default: 4, minimum: 1}
  seconds_per_epoch: {type: float, default: 0.1}
metric_definitions:
  - {name: loss, regex: 'loss=([0-9.eE+-]+)'}
objective: {metric: rmse, goal: minimize}
tuning:
  objective: {metric: loss, type: Minimize}
  strategy: Random
  ranges:
    offset: {type: continuous, min: 0.0, max: 10.0}
  max_jobs: 8
  max_parallel_jobs: 2
  early_stopping: Auto
  random_seed: 5
"""
# What each of the earlier round's completed trials logged, epoch by epoch: 1.2 / epoch.
COMPLETED_SERIES = [1.2, 0.6, 0.4, 0.3]


@pytest.fixture
def workload(tmp_path: Path) -> str:
    folder = tmp_path / "slow-trial"
    folder.mkdir()
    (folder / "train.py").write_text(SCRIPT)
    (folder / "workload.yaml").write_text(WORKLOAD)
    return str(folder / "workload.yaml")


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the script marks its start and its end (the job inherits the environment)."""
    folder = tmp_path / "marks"
    folder.mkdir()
    monkeypatch.setenv("TRIAL_MARKS", str(folder))
    return folder


@pytest.fixture
def round_journal(tmp_path: Path, workload: str) -> tuple[Path, int, int]:
    """A journal as a round's ``suggest_trials`` leaves it: 3 completed trials from an earlier
    round (the median rule's minimum), and one trial asked, RUNNING. Returns the journal, the
    running trial's number and the best completed one's."""
    spec = tuning_of(load_workload(workload))
    journal = tmp_path / "round.journal"
    earlier = suggest_round(journal, spec, 3)
    record_round(
        journal, spec, {t["number"]: outcome_from_metrics(COMPLETED_SERIES) for t in earlier}
    )
    (running,) = suggest_round(journal, spec, 1)
    return journal, running["number"], earlier[0]["number"]


def _train_trial(
    tmp_path: Path,
    workload: str,
    journal: Path,
    number: int,
    hyperparameters: dict,
    compute: str = "local",
) -> tuple[TrainedModel, float]:
    table = tmp_path / "table.csv"
    table.write_text("id,x,y\n" + "".join(f"{i},{i},{2 * i + 1}\n" for i in range(20)))
    started = time.monotonic()
    trained = train_model(
        workload_path=workload,
        compute=compute,
        # On EKS the step runs in the trial's pod, training with one process per GPU.
        compute_config={"gpus": 1} if compute == "eks-gpu" else {},
        hyperparameters=hyperparameters,
        train_path=table,
        test_path=table,
        model_path=tmp_path / "out" / "model.tar.gz",
        output_data_path=tmp_path / "out" / "output.tar.gz",
        study_path=journal,
        trial_number=number,
        log=lambda _line: None,
    )
    return trained, time.monotonic() - started


def _record(
    tmp_path: Path, workload: str, journal: Path, trained: TrainedModel, best: int
) -> list[dict]:
    """Record the round as ``record_trials`` does, with the trial's outputs as ``train_model``
    writes them (its model's metadata, its metrics file's series)."""
    metadata = {
        "job_name": trained.job_name,
        "hyperparameters": trained.hyperparameters,
        "metrics": trained.training_metrics,
        "pruning": json.loads(json.dumps(trained.pruning)),
    }
    carried = tmp_path / "best-so-far.tar.gz"
    carried.write_text("the earlier round's best model")
    recorded = record_trials(
        workload_path=workload,
        models=[TrialModel(tmp_path / "out" / "model.tar.gz", metadata)],
        curves=[TrialCurves(trained.job_name, trained.metric_series)],
        journal_in=journal,
        journal_out=tmp_path / "recorded.journal",
        best_in=TrialModel(carried, {"tuning": {"trial": best}}),
        best_out=tmp_path / "best.tar.gz",
        run="test-run",
    )
    return recorded.trials


def _study_trial(journal: Path, number: int):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    return next(t for t in study.get_trials() if t.number == number)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("compute", ["local", "eks-gpu"])
def test_a_trial_worse_than_the_completed_ones_is_stopped_while_it_trains_and_recorded_pruned(
    tmp_path: Path, workload: str, marks: Path, round_journal: tuple[Path, int, int], compute: str
) -> None:
    journal, number, best = round_journal
    before = journal.read_bytes()
    # 4 epochs of 10 s: 40 s if nothing stops it, and at least 10 s if it only dies on the next
    # line it prints. Its first loss, 6.0, is worse than the completed trials' 1.2 at that step.
    trained, took = _train_trial(
        tmp_path, workload, journal, number, {"offset": 5.0, "seconds_per_epoch": 10.0}, compute
    )

    assert trained.pruned_at_step == 1  # the log's "epoch 1"
    assert took < 7, f"the trial ran {took:.1f} s: it was not stopped while it slept"
    assert not (marks / "finished-5.0").exists()
    assert not _alive(int((marks / "started-5.0").read_text()))
    assert trained.metric_series == {"loss": [(1, 6.0)]}  # the series up to the stop
    with tarfile.open(tmp_path / "out" / "model.tar.gz") as model:
        assert model.getnames() == []  # an empty archive, never a model to deploy
    assert journal.read_bytes() == before  # judged on a private copy

    trials = _record(tmp_path, workload, journal, trained, best)

    row = next(t for t in trials if t["number"] == number)
    assert (row["state"], row["pruned_at_step"], row["best"]) == ("PRUNED", 1, False)
    assert _study_trial(tmp_path / "recorded.journal", number).intermediate_values == {0: 6.0}
    assert trial_line({**row, "metric": "loss", "objective": 6.0}).endswith(
        "→ pruned at step 1 (loss=6.0000)"
    )


def test_a_trial_no_worse_than_the_completed_ones_trains_to_its_end_and_completes(
    tmp_path: Path, workload: str, marks: Path, round_journal: tuple[Path, int, int]
) -> None:
    journal, number, best = round_journal
    trained, _ = _train_trial(tmp_path, workload, journal, number, {"offset": 0.0})

    assert trained.pruned_at_step is None
    assert trained.pruning["trial"] == number
    assert (marks / "finished-0.0").is_file()
    assert [value for _step, value in trained.metric_series["loss"]] == [1.0, 0.5, 0.3333, 0.25]

    trials = _record(tmp_path, workload, journal, trained, best)

    row = next(t for t in trials if t["number"] == number)
    assert (row["state"], row["objective"], row["best"]) == ("COMPLETE", 0.25, True)


def _judged_model(tmp_path: Path, trial: dict, series: list[float], pruned_at: int | None):
    """A trial's outputs as its ``train_model`` task left them after judging it."""
    model = tmp_path / f"model-{trial['number']}.tar.gz"
    model.write_text("")
    job = f"job-{trial['number']}"
    metadata = {
        "job_name": job,
        "hyperparameters": trial["hyperparameters"],
        "metrics": {"loss": series[-1]},
        # As KFP's Struct hands it over: every number a float.
        "pruning": {
            "trial": float(trial["number"]),
            "pruned_at_step": None if pruned_at is None else float(pruned_at),
            "pruner_attrs": {},
        },
    }
    curves = TrialCurves(job, {"loss": [[step + 1, v] for step, v in enumerate(series)]})
    return TrialModel(model, metadata), curves


def test_record_honours_each_trial_s_own_verdict_instead_of_judging_it_again(
    tmp_path: Path, workload: str
) -> None:
    spec = tuning_of(load_workload(workload))
    journal = tmp_path / "round.journal"
    earlier = suggest_round(journal, spec, 3)
    record_round(
        journal, spec, {t["number"]: outcome_from_metrics(COMPLETED_SERIES) for t in earlier}
    )
    stopped, kept = suggest_round(journal, spec, 2)
    # Better than the median at its first step, yet its pruner stopped it there (it judged
    # against what it saw); and worse at every step, yet its pruner let it finish.
    stopped_model = _judged_model(tmp_path, stopped, [0.1], pruned_at=1)
    kept_model = _judged_model(tmp_path, kept, [9.0, 8.0, 7.0, 6.0], pruned_at=None)
    carried = tmp_path / "best-so-far.tar.gz"
    carried.write_text("")

    recorded = record_trials(
        workload_path=workload,
        models=[stopped_model[0], kept_model[0]],
        curves=[stopped_model[1], kept_model[1]],
        journal_in=journal,
        journal_out=tmp_path / "recorded.journal",
        best_in=TrialModel(carried, {"tuning": {"trial": earlier[0]["number"]}}),
        best_out=tmp_path / "best.tar.gz",
        run="test-run",
    )

    rows = {row["number"]: row for row in recorded.trials}
    assert (rows[stopped["number"]]["state"], rows[stopped["number"]]["pruned_at_step"]) == (
        "PRUNED",
        1,
    )
    assert (rows[kept["number"]]["state"], rows[kept["number"]]["objective"]) == ("COMPLETE", 6.0)
    shown = Console(file=io.StringIO(), width=200)
    shown.print(trials_table(recorded.trials, "loss (minimize)"))
    assert "pruned at step 1" in shown.file.getvalue()


def test_a_trial_is_judged_only_where_its_step_can_stop_it_and_only_by_a_pruner(
    tmp_path: Path, workload: str, round_journal: tuple[Path, int, int]
) -> None:
    journal, number, _ = round_journal
    loaded = load_workload(workload)
    with pytest.raises(InvalidSpecError) as refused:
        judge_for(loaded, "sagemaker", journal, number, tmp_path)
    assert refused.value.field == "study"
    with pytest.raises(InvalidSpecError) as refused:
        judge_for(loaded, "local", journal, number + 1, tmp_path)  # never asked
    assert refused.value.field == "trial_number"

    without_pruner = Path(workload).with_name("off.yaml")
    without_pruner.write_text(Path(workload).read_text().replace("Auto", "Off"))
    assert judge_for(load_workload(str(without_pruner)), "local", journal, number, tmp_path) is None


# Grid runs ``kind``'s values in order: three good trials complete in round 1, then ``bad``, whose
# every epoch sleeps 10 s, is judged against them in round 2.
GRID_SCRIPT = """\
import argparse, os, time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--kind", default="good-1")
args, _ = parser.parse_known_args()
marks = Path(os.environ["TRIAL_MARKS"])
(marks / f"started-{args.kind}").write_text(str(os.getpid()))
for epoch in range(1, 5):
    loss = 5.0 + 1.0 / epoch if args.kind == "bad" else 1.0 / epoch
    print(f"epoch {epoch}: loss={loss:.4f}", flush=True)
    time.sleep(10 if args.kind == "bad" else 0.05)
Path(os.environ["SM_MODEL_DIR"], "model.txt").write_text(args.kind)
(marks / f"finished-{args.kind}").write_text("done")
"""

GRID_WORKLOAD = """\
name: grid-trial
entry_point: train.py
data: {id_column: id, feature_columns: [x], label_column: y}
hyperparameters:
  kind: {type: str, default: good-1, choices: [good-1, good-2, good-3, bad]}
metric_definitions:
  - {name: loss, regex: 'loss=([0-9.eE+-]+)'}
objective: {metric: rmse, goal: minimize}
tuning:
  objective: {metric: loss, type: Minimize}
  strategy: Grid
  ranges:
    kind: {type: categorical, values: [good-1, good-2, good-3, bad]}
  max_parallel_jobs: 3
  early_stopping: Auto
"""


def _two_rounds(workload: str, source: str):
    """Two rounds as the tuning pipeline chains them: suggest, a ``train_model`` task per trial
    handed the round's study and its number, record."""
    from kfp import dsl

    from flywheel.components import prepare_data, record_trials, suggest_trials
    from flywheel.components import train_model as train_component

    def pipeline():
        prepared = prepare_data(
            source=source,
            workload=workload,
            batch_count=1,
            training_batches=1,
            test_fraction=0.25,
            seed=7,
            order_by="",
            source_fingerprint="",
        )
        journal, best = None, None
        for _ in range(2):
            suggested = suggest_trials(
                workload=workload,
                hyperparameters={},
                **({} if journal is None else {"journal": journal}),
            )
            with dsl.ParallelFor(suggested.outputs["Output"], parallelism=3) as trial:
                trained = train_component(
                    workload=workload,
                    compute="local",
                    compute_config={},
                    hyperparameters=trial.hyperparameters,
                    code_fingerprint="",
                    train=prepared.outputs["train"],
                    test=prepared.outputs["test"],
                    study=suggested.outputs["study"],
                    trial_number=trial.number,
                )
            recorded = record_trials(
                workload=workload,
                models=dsl.Collected(trained.outputs["model"]),
                metrics=dsl.Collected(trained.outputs["metrics"]),
                journal=suggested.outputs["study"],
                run="test-run",
                **({} if best is None else {"best_so_far": best}),
            )
            journal, best = recorded.outputs["study"], recorded.outputs["best"]
        return recorded.outputs["Output"]

    pipeline.__annotations__["return"] = list  # a type, not this module's postponed string
    return dsl.pipeline(name="in-trial-pruning")(pipeline)


def test_on_kfp_local_the_pruned_trial_s_task_succeeds_and_its_round_records_it_pruned(
    tmp_path: Path, marks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """And run again, every trial comes from the cache: each was judged against the same study."""
    from flywheel.pipelines.local_runner import run_locally
    from flywheel.pipelines.tuning_run import _TrialLines

    folder = tmp_path / "grid-trial"
    folder.mkdir()
    (folder / "train.py").write_text(GRID_SCRIPT)
    (folder / "workload.yaml").write_text(GRID_WORKLOAD)
    source = tmp_path / "table.csv"
    source.write_text("id,x,y\n" + "".join(f"{i},{i},{2 * i + 1}\n" for i in range(40)))
    events = tmp_path / "trials.jsonl"
    monkeypatch.setenv("FLYWHEEL_TRIAL_EVENTS", str(events))

    pipeline = _two_rounds(str(folder / "workload.yaml"), str(source))

    def run_it():
        return run_locally(
            pipeline, {}, pipeline_root=tmp_path / "runs", console=Console(file=io.StringIO())
        )

    run = run_it()

    rows = {row["hyperparameters"]["kind"]: row for row in run.outputs["Output"]}
    assert {kind: row["state"] for kind, row in rows.items()} == {
        "good-1": "COMPLETE",
        "good-2": "COMPLETE",
        "good-3": "COMPLETE",
        "bad": "PRUNED",
    }
    assert rows["bad"]["pruned_at_step"] == 1
    assert not (marks / "finished-bad").exists()
    assert not _alive(int((marks / "started-bad").read_text()))
    lines = _TrialLines(frozenset({"kind"}))
    shown = [lines.line_for(json.loads(line)) for line in events.read_text().splitlines()]
    assert "trial 3: kind=bad → pruned at step 1 (loss=6.0000)" in shown
    (curves,) = [
        json.loads(path.read_text())
        for path in (tmp_path / "runs").rglob("metrics")
        if path.is_file() and "6.0" in path.read_text()
    ]
    assert curves["series"] == {"loss": [[1, 6.0]]}  # the bad trial's metrics, up to the stop
    logged = [
        artifact["metadata"]
        for path in (tmp_path / "runs").rglob("executor_output.json")
        for artifacts in json.loads(path.read_text()).get("artifacts", {}).values()
        for artifact in artifacts["artifacts"]
        if "pruned_at_step" in artifact.get("metadata", {})
    ]
    assert logged == [{"loss": 6.0, "pruned_at_step": 1.0}]  # the KFP UI shows where it stopped

    for mark in marks.iterdir():
        mark.unlink()
    again = run_it()
    assert again.outputs["Output"] == run.outputs["Output"]
    assert list(marks.iterdir()) == []  # no trial trained again


def test_hyperband_s_rungs_reached_while_a_trial_trained_are_recorded_for_the_trials_after_it(
    tmp_path: Path,
) -> None:
    spec = TuningSpec(
        objective_metric="loss",
        objective_type="Minimize",
        strategy="Hyperband",
        ranges=(ParameterRange("x", "continuous", min=0.0, max=1.0, scaling="Linear"),),
        max_jobs=4,
        max_parallel_jobs=1,
        random_seed=1,
        min_resource=1,
        max_resource=4,
    )
    journal = tmp_path / "round.journal"
    (trial,) = suggest_round(journal, spec, 1)
    private = tmp_path / "private.journal"
    shutil.copyfile(journal, private)
    running = RunningTrial(private, spec, trial["number"])
    values = [1.0, 0.5, 0.4, 0.3]
    stopped = [running.should_stop(value) for value in values]
    verdict = running.verdict(None)
    assert stopped == [False] * 4  # alone in its bracket, it is never outranked
    assert any(key.startswith("completed_rung_") for key in verdict.pruner_attrs)

    record_round(journal, spec, {trial["number"]: outcome_from_metrics(values, verdict=verdict)})

    attrs = _study_trial(journal, trial["number"]).system_attrs
    assert {key: attrs.get(key) for key in verdict.pruner_attrs} == dict(verdict.pruner_attrs)
