"""A training-only workload (``serving: false``, no evaluation script) trains, registers and stops.

End to end through kfp.local, with a script of our own that defines no ``model_fn``: nothing could
serve its model, so evaluate, score champion and the quality gate must not run.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from flywheel.components.registry import LocalModelRegistry
from flywheel.components.steps.training_plan import TRAINING_ONLY
from flywheel.pipelines.training_run import TrainingRequest, run_training, summary_table

pytestmark = pytest.mark.e2e

# No model_fn, no handlers at all: a model SageMaker could train but never serve.
TRAIN_ONLY_SCRIPT = """\
import argparse, csv, glob, json, os

parser = argparse.ArgumentParser()
parser.add_argument("--n-estimators", type=int, required=True)
parser.add_argument("--model-dir", default=os.environ["SM_MODEL_DIR"])
args, _ = parser.parse_known_args()
rows = [
    row
    for path in glob.glob(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "*.csv"))
    for row in csv.DictReader(open(path))
]
mean = sum(float(row["y"]) for row in rows) / len(rows)
with open(os.path.join(args.model_dir, "model.json"), "w") as handle:
    json.dump({"mean": mean, "n_estimators": args.n_estimators}, handle)
print(f"loss={mean}")
"""

WORKLOAD = """\
name: mean-only
entry_point: train.py
serving: false
data: {id_column: id, feature_columns: [x], label_column: y}
hyperparameters:
  n-estimators: {type: int, default: 3, minimum: 1}
"""


@pytest.fixture(scope="module")
def training_only(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("training-only")
    folder = tmp_path / "mean-only"
    folder.mkdir()
    (folder / "train.py").write_text(TRAIN_ONLY_SCRIPT)
    (folder / "workload.yaml").write_text(WORKLOAD)
    table = tmp_path / "table.csv"
    table.write_text("id,x,y\n" + "".join(f"{i},{i},{2 * i + 1}\n" for i in range(20)))
    request = TrainingRequest(
        workload=str(folder / "workload.yaml"),
        source=str(table),
        hyperparameters={"n-estimators": "10"},
        registry=str(tmp_path / "registry"),
        pipeline_root=str(tmp_path / "runs"),
        batch_count=4,
        training_batches=2,
    )
    shown = io.StringIO()
    outcome = run_training(request, console=Console(file=shown, width=200))
    return tmp_path, outcome, shown.getvalue()


def test_training_only_registers_a_candidate_with_no_metrics_and_its_lineage(
    training_only,
) -> None:
    tmp_path, outcome, _ = training_only
    (version,) = LocalModelRegistry(tmp_path / "registry").versions("mean-only")
    assert version.stage == "candidate" and version.metrics == {}
    assert not outcome.promoted and not outcome.scored
    assert outcome.version.version == version.version == 1
    lineage = version.lineage
    assert lineage["data"]["train"]["sha256"] and lineage["data"]["test"]["rows"] > 0
    assert lineage["code"]["entry_point"] == "train.py"
    assert lineage["training"]["compute"] == "local"
    assert lineage["compared_with"] == {"version": None, "metrics": {}}
    assert Path(version.model_uri).is_file()


def test_training_only_never_runs_evaluate_score_champion_or_the_gate(training_only) -> None:
    _, outcome, _ = training_only
    ran = set(outcome.run.tasks.started)
    assert {"plan-training", "train-model"} <= ran
    assert not ran & {"evaluate-model", "score-champion", "decide-promotion", "promote-model"}


def test_the_skipped_steps_are_named_in_one_line(training_only) -> None:
    _, _, shown = training_only
    assert shown.count(TRAINING_ONLY) == 1
    assert TRAINING_ONLY == (
        "training only (serving: false, no evaluation script): "
        "evaluate, score champion and the quality gate are skipped"
    )


def test_the_summary_says_candidate_not_compared(training_only) -> None:
    _, outcome, _ = training_only
    text = io.StringIO()
    Console(file=text, width=200).print(summary_table(outcome))
    assert "mean-only version 1" in text.getvalue()
    assert "candidate (training only: not scored, so not compared with the champion)" in (
        text.getvalue()
    )


def test_integer_hyperparameters_stay_integers_in_version_json(training_only) -> None:
    tmp_path, _, _ = training_only
    (written,) = (tmp_path / "registry").rglob("version.json")
    hyperparameters = json.loads(written.read_text())["hyperparameters"]
    assert hyperparameters["n-estimators"] == 10
    assert isinstance(hyperparameters["n-estimators"], int)
