from pathlib import Path

import pyarrow as pa
import pytest

from flywheel.components.contract.metrics import MetricCollector, MetricDefinition, step_in
from flywheel.components.contract.workload import load_workload
from flywheel.components.data import batches as data
from flywheel.components.data import tables
from flywheel.components.errors import InvalidSpecError
from flywheel.components.steps.gate import compare

from .conftest import QSAR_WORKLOAD


def test_example_workload_declares_its_script_and_objective() -> None:
    workload = load_workload(QSAR_WORKLOAD)
    assert (workload.source_dir / workload.entry_point).is_file()
    assert workload.objective_metric == "rmse"
    assert workload.resolve_hyperparameters({})["n_estimators"] == 200


def test_hyperparameters_are_coerced_from_command_line_strings(make_workload) -> None:
    workload = load_workload(make_workload("print()"))
    resolved = workload.resolve_hyperparameters({"epochs": "5", "rate": "0.25", "verbose": "true"})
    assert resolved == {"epochs": 5, "rate": 0.25, "verbose": True}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"epoch": "5"},
            r"hyperparameters.epoch: unknown hyperparameter; did you mean epochs\?",
        ),
        ({"epochs": "five"}, r"hyperparameters.epochs: expected int, got 'five'"),
        ({"epochs": "0"}, r"hyperparameters.epochs: 0 is below the minimum 1"),
        ({"rate": "nan"}, r"hyperparameters.rate: expected float"),
        ({"verbose": "maybe"}, r"hyperparameters.verbose: expected bool"),
    ],
)
def test_bad_hyperparameters_are_refused_naming_the_field(
    make_workload, overrides, message
) -> None:
    workload = load_workload(make_workload("print()"))
    with pytest.raises(InvalidSpecError, match=message):
        workload.resolve_hyperparameters(overrides)


def test_workload_without_its_script_is_refused(tmp_path: Path) -> None:
    (tmp_path / "workload.yaml").write_text("name: x\nentry_point: missing.py\n")
    with pytest.raises(InvalidSpecError, match=r"entry_point: missing\.py is not a file"):
        load_workload(tmp_path / "workload.yaml")


def test_builtin_chembl_data_joins_smiles_with_activities() -> None:
    header, rows = data.read_table("builtin:chembl-CHEMBL2321810")
    assert header == ["compound_id", "smiles", "pIC50"]
    assert len(rows) > 1000
    assert all(row["smiles"] and float(row["pIC50"]) > 0 for row in rows)


def _cut_ids(source: Path, batch_count: int, order_by: str = "") -> list[list[str]]:
    total, records = data.ordered_rows(tables.open_table(str(source)), order_by)
    batches: list[list[str]] = [[] for _ in range(batch_count)]
    for index, _, piece in data.cut(records, data.batch_bounds(total, batch_count)):
        batches[index].extend(piece.column("id").to_pylist())
    return batches


def test_ordered_batches_keep_order_and_cover_every_row(toy_table: Path) -> None:
    batches = _cut_ids(toy_table, 3)
    assert [len(b) for b in batches] == [7, 7, 6]
    assert [i for b in batches for i in b] == [str(i) for i in range(20)]


def test_order_by_sorts_text_numbers_as_numbers(tmp_path: Path) -> None:
    source = tmp_path / "reversed.csv"
    source.write_text("id,x,y\n" + "".join(f"{i},{i},{i}\n" for i in (10, 9, 2, 1)))
    assert _cut_ids(source, 2, order_by="y") == [["1", "2"], ["9", "10"]]


def test_batches_cut_across_record_batches_cover_every_row_once() -> None:
    records = iter(pa.table({"id": [str(i) for i in range(10)]}).to_batches(max_chunksize=3))
    pieces = list(data.cut(records, data.batch_bounds(10, 4)))
    assert [(index, first, piece.num_rows) for index, first, piece in pieces] == [
        (0, 0, 3),
        (1, 3, 3),
        (2, 6, 2),
        (3, 8, 1),
        (3, 9, 1),
    ]


def test_holdout_is_seeded_and_leaves_both_sides_rows() -> None:
    first = data.holdout_mask(100, 0.2, seed=7).to_pylist()
    assert sum(first) == 20 and first == data.holdout_mask(100, 0.2, seed=7).to_pylist()
    assert first != data.holdout_mask(100, 0.2, seed=8).to_pylist()
    assert data.holdout_mask(2, 0.9, seed=1).to_pylist().count(True) == 1


def test_holdout_over_many_blocks_is_exact_and_spread_evenly() -> None:
    mask = data.holdout_mask(300_000, 0.2, seed=3).to_pylist()
    assert sum(mask) == 60_000
    thirds = [sum(mask[i : i + 100_000]) for i in range(0, 300_000, 100_000)]
    assert all(abs(third - 20_000) < 600 for third in thirds)  # about 5 standard deviations


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,x\n1,2\n", r"lacks column\(s\) y; it has id, x"),
        ("id,x,y\n", "has no rows"),
        ("id,x,y\n1,2,\n", "line 2: empty y"),
        ("id,x,y\n1,2,high\n", "line 2: label y='high' is not a number"),
    ],
)
def test_malformed_tables_are_refused_naming_the_problem(
    tmp_path: Path, make_workload, content, message
) -> None:
    workload = load_workload(make_workload("print()"))
    path = tmp_path / "bad.csv"
    path.write_text(content)
    header, rows = data.read_table(str(path))
    with pytest.raises(InvalidSpecError, match=message):
        data.check_table(str(path), header, rows, workload.columns)


def test_metric_definition_without_a_group_is_refused() -> None:
    with pytest.raises(InvalidSpecError, match="capturing group"):
        MetricDefinition("loss", "loss=[0-9.]+")
    collector = MetricCollector([MetricDefinition("loss", r"loss=([0-9.]+)")])
    for line in ("loss=0.9", "noise", "loss=0.4"):
        collector.observe(line)
    assert collector.final == {"loss": 0.4}
    assert collector.series == {"loss": [(0, 0.9), (1, 0.4)]}  # no step named: 0, 1, ...


@pytest.mark.parametrize(
    ("line", "step"),
    [
        ("Epoch 3/10 loss=0.4", 3),
        ("step=200 loss=0.4", 200),
        ("[step: 7] loss=0.4", 7),
        ("epoch: 12, loss=0.4", 12),
        ("loss=0.4 steps taken", None),
        ("stepwise loss=0.4", None),
    ],
)
def test_a_metric_line_names_its_step_or_epoch(line: str, step: int | None) -> None:
    assert step_in(line) == step


def test_gate_promotes_only_a_candidate_better_by_the_margin() -> None:
    assert compare({"rmse": 0.5}, None, "rmse", "minimize", 0.0).promote
    assert compare({"rmse": 0.5}, {"rmse": 0.6}, "rmse", "minimize", 0.05).promote
    assert not compare({"rmse": 0.58}, {"rmse": 0.6}, "rmse", "minimize", 0.05).promote
    assert compare({"r2": 0.8}, {"r2": 0.7}, "r2", "maximize", 0.0).promote
    assert not compare({"r2": 0.6}, {"r2": 0.7}, "r2", "maximize", 0.0).promote


def test_logged_metrics_leave_out_bookkeeping_even_after_protobuf_made_it_float() -> None:
    from flywheel.components.monitoring.scores import logged_metrics

    assert logged_metrics({"rmse": 0.5, "r2": 1, "rows": 160.0, "version": 3.0, "note": "x"}) == {
        "rmse": 0.5,
        "r2": 1.0,
    }


def _workload_text(tmp_path: Path, text: str) -> Path:
    (tmp_path / "train.py").write_text("print()\n")
    (tmp_path / "workload.yaml").write_text(text)
    return tmp_path / "workload.yaml"


BASE_WORKLOAD = """\
name: toy
entry_point: train.py
data: {id_column: id, feature_columns: [x], label_column: y}
hyperparameters:
  epochs: {type: int, default: 2}
objective: {metric: rmse}
"""


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "hyperparameters:",
            "hyperparamters:",
            r"^hyperparamters: unknown key; did you mean hyperparameters\?$",
        ),
        ("id_column", "id_colum", r"^data.id_colum: unknown key; did you mean id_column\?$"),
        (
            "type: int",
            "typ: int",
            r"^hyperparameters.epochs.typ: unknown key; did you mean type\?$",
        ),
        ("metric: rmse", "metrc: rmse", r"^objective.metrc: unknown key; did you mean metric\?$"),
        ("name: toy", "name: toy\ncolour: red", r"^colour: unknown key; allowed: name, task"),
    ],
)
def test_unknown_keys_are_refused_at_every_level_with_the_nearest_valid_key(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    path = _workload_text(tmp_path, BASE_WORKLOAD.replace(old, new))
    with pytest.raises(InvalidSpecError, match=message):
        load_workload(path)


def test_misspelt_metric_definition_key_is_refused(tmp_path: Path) -> None:
    text = BASE_WORKLOAD + "metric_definitions:\n  - {name: loss, regx: 'loss=(\\\\S+)'}\n"
    with pytest.raises(
        InvalidSpecError, match=r"metric_definitions\[0\].regx: .*did you mean regex"
    ):
        load_workload(_workload_text(tmp_path, text))


@pytest.mark.parametrize(
    ("task", "objective", "message"),
    [
        ("regression", "{metric: accuracy}", r"a regression task is evaluated by rmse, mae, r2"),
        ("classification", "{metric: rmse}", r"evaluated by accuracy, f1, roc_auc, log_loss"),
        ("regression", "{metric: r2, goal: minimize}", r"objective.goal: .*use maximize"),
    ],
)
def test_objective_is_checked_against_the_tasks_metrics_when_the_workload_loads(
    tmp_path: Path, task: str, objective: str, message: str
) -> None:
    text = BASE_WORKLOAD.replace(
        "objective: {metric: rmse}", f"task: {task}\nobjective: {objective}"
    )
    with pytest.raises(InvalidSpecError, match=message):
        load_workload(_workload_text(tmp_path, text))


@pytest.mark.parametrize(
    ("metric", "goal"),
    [
        ("accuracy", "maximize"),
        ("f1", "maximize"),
        ("roc_auc", "maximize"),
        ("log_loss", "minimize"),
    ],
)
def test_classification_objectives_take_their_own_direction(
    tmp_path: Path, metric: str, goal: str
) -> None:
    text = BASE_WORKLOAD.replace(
        "objective: {metric: rmse}", f"task: classification\nobjective: {{metric: {metric}}}"
    )
    workload = load_workload(_workload_text(tmp_path, text))
    assert (workload.objective_metric, workload.objective_goal) == (metric, goal)


def test_classification_metrics_match_their_textbook_values() -> None:
    from flywheel.components.monitoring.scores import classification_metrics

    truth = ["a", "b", "b", "a", "b", "a", "b"]
    predicted = ["a", "b", "a", "a", "b", "b", "b"]
    scores = [0.2, 0.9, 0.4, 0.1, 0.8, 0.6, 0.4]
    metrics = classification_metrics(truth, predicted, scores)
    # Values from scikit-learn: accuracy_score, f1_score(pos_label="b"), roc_auc_score, log_loss.
    assert metrics == pytest.approx(
        {"accuracy": 5 / 7, "f1": 0.75, "roc_auc": 0.8333333333, "log_loss": 0.4865543328}
    )
    assert classification_metrics(["a", "b", "c", "a"], ["a", "c", "c", "b"], None) == (
        pytest.approx({"accuracy": 0.5, "f1": 0.4444444444})
    )


@pytest.mark.parametrize(
    ("serving", "message"),
    [
        ("{split_type: line}", r"^serving.split_type: 'line' is not one of \['None', 'Line'\]$"),
        ("{split_type: RecordIO}", r"^serving.split_type: 'RecordIO' is not one of"),
        (
            "{split_type: ~}",
            r"^serving.split_type: null \(no value\) is not one of \['None', 'Line'\]$",
        ),
        ("{batch_strategy: Single}", r"^serving.batch_strategy: 'Single' is not one of"),
        (
            "{content_type: application/x-npy, split_type: Line}",
            r"^serving.content_type: application/x-npy is binary: it cannot be cut or assembled",
        ),
        (
            "{accept: application/x-npy, split_type: Line, batch_strategy: SingleRecord}",
            r"^serving.accept: application/x-npy is binary",
        ),
    ],
)
def test_bad_split_type_and_batch_strategy_are_refused_when_the_workload_loads(
    tmp_path: Path, serving: str, message: str
) -> None:
    path = _workload_text(tmp_path, BASE_WORKLOAD + f"serving: {serving}\n")
    with pytest.raises(InvalidSpecError, match=message):
        load_workload(path)


def test_split_type_and_batch_strategy_default_to_sagemakers_whole_file_multi_record(
    tmp_path: Path,
) -> None:
    serving = load_workload(_workload_text(tmp_path, BASE_WORKLOAD)).serving
    assert (serving.split_type, serving.batch_strategy) == ("None", "MultiRecord")


def test_single_record_without_line_splitting_is_accepted_as_sagemaker_accepts_it(
    tmp_path: Path,
) -> None:
    # SageMaker's BatchStrategy takes effect only with a SplitType: each file stays one request.
    text = BASE_WORKLOAD + "serving: {batch_strategy: SingleRecord}\n"
    serving = load_workload(_workload_text(tmp_path, text)).serving
    assert (serving.split_type, serving.batch_strategy) == ("None", "SingleRecord")
