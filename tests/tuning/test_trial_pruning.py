"""Early stopping stops a local trial while it trains, as Katib's ``medianstop`` stops one.

A real script, run by the train step under the training toolkit, prints its objective epoch by
epoch. The round's journal holds three completed trials from an earlier round; the trial is judged
against them value by value as its log shows them, stopped where the median rule says so, and its
round's record step records it pruned at that step, as decided.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import psutil
import pytest
from rich.console import Console

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
    tmp_path: Path, workload: str, journal: Path, number: int, hyperparameters: dict
) -> tuple[TrainedModel, float]:
    table = tmp_path / "table.csv"
    table.write_text("id,x,y\n" + "".join(f"{i},{i},{2 * i + 1}\n" for i in range(20)))
    started = time.monotonic()
    trained = train_model(
        workload_path=workload,
        compute="local",
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


def test_a_trial_worse_than_the_completed_ones_is_stopped_while_it_trains_and_recorded_pruned(
    tmp_path: Path, workload: str, marks: Path, round_journal: tuple[Path, int, int]
) -> None:
    journal, number, best = round_journal
    before = journal.read_bytes()
    # 4 epochs of 10 s: 40 s if nothing stops it, and at least 10 s if it only dies on the next
    # line it prints. Its first loss, 6.0, is worse than the completed trials' 1.2 at that step.
    trained, took = _train_trial(
        tmp_path, workload, journal, number, {"offset": 5.0, "seconds_per_epoch": 10.0}
    )

    assert trained.pruned_at_step == 1  # the log's "epoch 1"
    assert took < 7, f"the trial ran {took:.1f} s: it was not stopped while it slept"
    assert not (marks / "finished-5.0").exists()
    assert not _alive(int((marks / "started-5.0").read_text()))
    assert trained.metric_series == {"loss": [(1, 6.0)]}  # the series up to the stop
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
