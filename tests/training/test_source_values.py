"""Sources refused before training, naming what is wrong: a header with no rows, and text such as
``n/a`` in a numeric feature."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from flywheel.components.contract.workload import DataColumns
from flywheel.components.data import batches as data
from flywheel.components.errors import InvalidSpecError
from flywheel.components.steps.prepare import prepare_data
from flywheel.pipelines.cli import main


def test_a_header_only_csv_exits_2_before_any_task_runs(tmp_path: Path, capsys) -> None:
    table = tmp_path / "assay.csv"
    table.write_text("compound_id,smiles,pIC50\n")
    status = main(
        [
            "run",
            "training",
            "--source",
            str(table),
            "--registry",
            str(tmp_path / "registry"),
            "--pipeline-root",
            str(tmp_path / "runs"),
        ]
    )
    error = capsys.readouterr().err.strip()
    assert status == 2
    assert error.splitlines() == [f"flywheel: error: source: {table} has no rows, only a header"]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "registry").exists()


def test_n_a_in_a_numeric_feature_fails_at_prepare_naming_the_line_and_column(
    make_workload, tmp_path: Path
) -> None:
    workload = make_workload("print()\n")
    table = tmp_path / "with-gap.csv"
    rows = [f"{i},{i}.5,{2 * i}" for i in range(10)]
    rows[6] = "6,n/a,12"
    table.write_text("id,x,y\n" + "\n".join(rows) + "\n")
    with pytest.raises(InvalidSpecError) as refused:
        prepare_data(
            source=str(table),
            workload_path=str(workload),
            batch_count=2,
            training_batches=1,
            test_fraction=0.2,
            seed=7,
            order_by="",
            train_path=tmp_path / "train.csv",
            test_path=tmp_path / "test.csv",
            batches_dir=tmp_path,
        )
    assert str(refused.value) == (
        f"source: {table} line 8: feature x='n/a' is not a number, "
        "though the column's other values are"
    )


COLUMNS = DataColumns(features=("smiles", "weight"), label="y", id="id")


def _rows(smiles: list[str], weight: list[str], label: list[str] | None = None) -> pa.Table:
    ids = [str(i) for i in range(len(smiles))]
    return pa.table({"id": ids, "smiles": smiles, "weight": weight, "y": label or ["1"] * len(ids)})


def test_a_text_feature_is_not_mistaken_for_a_numeric_one() -> None:
    data.check_rows("t.csv", _rows(["CCO", "c1ccccc1", "N"], ["1.5", "2e3", "-.25"]), COLUMNS)
    data.check_rows("t.csv", _rows(["CCO", "C", "N"], ["nan", "inf", " 7 "]), COLUMNS)


def test_a_classification_table_checks_its_numeric_features_too() -> None:
    rows = _rows(["CCO", "C", "N"], ["1", "?", "3"], label=["a", "b", "a"])
    with pytest.raises(InvalidSpecError, match=r"t.csv line 3: feature weight='\?' is not a"):
        data.check_rows("t.csv", rows, COLUMNS, task="classification")


def test_evaluate_refuses_the_same_held_out_rows_by_row_and_column() -> None:
    header = ["id", "smiles", "weight", "y"]
    rows = [
        {"id": str(i), "smiles": "CCO", "weight": "n/a" if i == 2 else str(i), "y": "1"}
        for i in range(5)
    ]
    with pytest.raises(InvalidSpecError, match=r"test.csv line 4: feature weight='n/a'"):
        data.check_table("test.csv", header, rows, COLUMNS)
