"""prepare_data streams the table: batch files, train and test come out of one pass in record batches."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flywheel.components.data import tables
from flywheel.components.errors import InvalidSpecError
from flywheel.components.steps.prepare import prepare_data

from .conftest import BUCKET

REPO = Path(__file__).resolve().parents[2]
QSAR_WORKLOAD = REPO / "examples" / "qsar" / "workload.yaml"


def _assay(rows: int) -> pa.Table:
    return pa.table(
        {
            "compound_id": [f"c{i:04d}" for i in range(rows)],
            "smiles": ["C" * (1 + i % 7) + "O" for i in range(rows)],
            "pIC50": [4.0 + (i % 50) / 10 for i in range(rows)],
        }
    )


def _ids(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        return [row["compound_id"] for row in csv.DictReader(handle)]


def _prepare(source: str, out: Path, **overrides):
    arguments = {
        "source": source,
        "workload_path": str(QSAR_WORKLOAD),
        "batch_count": 4,
        "training_batches": 2,
        "test_fraction": 0.25,
        "seed": 7,
        "order_by": "",
        "train_path": out / "train.csv",
        "test_path": out / "test.csv",
        "batches_dir": out / "batches",
    }
    return prepare_data(**{**arguments, **overrides})


def test_parquet_from_s3_is_cut_and_split_across_record_batches(
    s3, tmp_path: Path, monkeypatch
) -> None:
    sink = io.BytesIO()
    pq.write_table(_assay(1000), sink, row_group_size=90)
    s3.put_object(Bucket=BUCKET, Key="assays/screen.parquet", Body=sink.getvalue())
    monkeypatch.setattr(tables, "BATCH_ROWS", 64)  # many record batches, none on a batch bound
    prepared = _prepare(f"s3://{BUCKET}/assays/screen.parquet", tmp_path)
    batches = [_ids(tmp_path / "batches" / f"batch-{i:03d}.csv") for i in range(4)]
    assert [len(b) for b in batches] == [250, 250, 250, 250]
    assert [i for b in batches for i in b] == [f"c{i:04d}" for i in range(1000)]
    train, test = _ids(tmp_path / "train.csv"), _ids(tmp_path / "test.csv")
    assert (prepared.train_rows, prepared.test_rows) == (375, 125)
    assert sorted(train + test) == batches[0] + batches[1] and not set(train) & set(test)
    assert prepared.columns == ["compound_id", "smiles", "pIC50"]


def test_same_rows_as_csv_or_parquet_give_the_same_split(tmp_path: Path) -> None:
    table = _assay(200)
    pq.write_table(table, tmp_path / "assay.parquet")
    tables.write_csv(tmp_path / "assay.csv", table)
    _prepare(str(tmp_path / "assay.parquet"), tmp_path / "from-parquet")
    _prepare(str(tmp_path / "assay.csv"), tmp_path / "from-csv")
    for name in ("train.csv", "test.csv", "batches/batch-003.csv"):
        assert _ids(tmp_path / "from-parquet" / name) == _ids(tmp_path / "from-csv" / name)


def test_a_bad_label_deep_in_a_parquet_file_names_its_row(tmp_path: Path, monkeypatch) -> None:
    table = _assay(300)
    labels = table.column("pIC50").to_pylist()
    labels[257] = float("nan")
    pq.write_table(table.set_column(2, "pIC50", pa.array(labels)), tmp_path / "nan.parquet")
    monkeypatch.setattr(tables, "BATCH_ROWS", 64)
    with pytest.raises(InvalidSpecError, match=r"nan\.parquet row 258: label pIC50=nan"):
        _prepare(str(tmp_path / "nan.parquet"), tmp_path / "out")


def test_order_by_sorts_before_cutting(tmp_path: Path) -> None:
    table = _assay(40)
    pq.write_table(
        table.set_column(2, "pIC50", pa.array(range(40, 0, -1), pa.float64())),
        tmp_path / "a.parquet",
    )
    _prepare(str(tmp_path / "a.parquet"), tmp_path, order_by="pIC50")
    assert _ids(tmp_path / "batches" / "batch-000.csv")[0] == "c0039"


def test_the_command_line_reads_the_header_and_leaves_the_rows_to_the_task(tmp_path: Path) -> None:
    from flywheel.pipelines.training_run import TrainingRequest, pipeline_arguments

    source = tmp_path / "assay.csv"
    tables.write_csv(source, _assay(100))
    with source.open("a") as handle:
        handle.write("c9999,CCO,not-a-number\n")  # only a full read could see this row
    arguments = pipeline_arguments(
        TrainingRequest(workload=str(QSAR_WORKLOAD), source=str(source), registry=str(tmp_path))
    )
    assert arguments["source"] == str(source) and arguments["source_fingerprint"].startswith(
        "sha256:"
    )
    with pytest.raises(InvalidSpecError, match=r"line 102: label pIC50='not-a-number'"):
        _prepare(str(source), tmp_path / "out")


def test_a_bad_value_deep_in_a_csv_read_in_small_blocks_names_its_line(
    tmp_path: Path, monkeypatch
) -> None:
    source = tmp_path / "assay.csv"
    lines = ["compound_id,smiles,pIC50"] + [f"c{i},CCO,{5 + i % 3}" for i in range(500)]
    lines[401] = "c400,,5"
    source.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(tables, "CSV_BLOCK_BYTES", 256)  # dozens of record batches
    with pytest.raises(InvalidSpecError, match=r"assay\.csv line 402: empty smiles"):
        _prepare(str(source), tmp_path / "out")
