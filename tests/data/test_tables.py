"""The one table reader: local or S3, CSV or Parquet, and errors that name the URI."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flywheel.components.data import tables
from flywheel.components.data.s3_objects import stat_object
from flywheel.components.errors import InvalidSpecError

from .conftest import BUCKET

ROWS = pa.table(
    {"compound_id": ["007", "008", "009"], "smiles": ["CCO", "CCN", "CCC"], "pIC50": [5.5, 6, 7.25]}
)


def _parquet(table: pa.Table, **options) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def test_s3_csv_and_parquet_read_the_same_rows(s3) -> None:
    s3.put_object(
        Bucket=BUCKET,
        Key="t/assay.csv",
        Body=b"compound_id,smiles,pIC50\n007,CCO,5.5\n008,CCN,6\n009,CCC,7.25\n",
    )
    s3.put_object(Bucket=BUCKET, Key="t/assay.parquet", Body=_parquet(ROWS, row_group_size=2))
    from_csv = tables.open_table(f"s3://{BUCKET}/t/assay.csv").read()
    from_parquet = tables.open_table(f"s3://{BUCKET}/t/assay.parquet")
    assert from_parquet.num_rows == 3 and from_parquet.columns == ROWS.column_names
    assert from_csv.column("compound_id").to_pylist() == ["007", "008", "009"]  # text, as written
    assert from_parquet.read().column("pIC50").to_pylist() == [5.5, 6.0, 7.25]
    assert [float(v) for v in from_csv.column("pIC50").to_pylist()] == [5.5, 6.0, 7.25]


def test_parquet_streams_in_record_batches_not_whole(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"id": list(range(1000))}), path, row_group_size=100)
    monkeypatch.setattr(tables, "BATCH_ROWS", 64)
    sizes = [batch.num_rows for batch in tables.open_table(str(path)).batches()]
    assert max(sizes) <= 64 and sum(sizes) == 1000


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("s3://no-such-bucket-here/assay.csv", "no such bucket 'no-such-bucket-here'"),
        (f"s3://{BUCKET}/missing/assay.parquet", "no such key 'missing/assay.parquet'"),
        (f"s3://{BUCKET}/t/corrupt.parquet", "is not a readable Parquet file"),
        (f"s3://{BUCKET}/t/assay.json", "is neither CSV (.csv) nor Parquet"),
    ],
)
def test_unreadable_sources_are_one_line_naming_the_uri(s3, uri, problem) -> None:
    s3.put_object(Bucket=BUCKET, Key="t/corrupt.parquet", Body=b"PAR1 not really parquet PAR1")
    with pytest.raises(InvalidSpecError) as refused:
        tables.open_table(uri)
    message = str(refused.value)
    assert message.startswith(f"source: {uri}") and problem in message
    assert len(message.splitlines()) == 1


def test_denied_read_says_access_denied(s3, without_read_access) -> None:
    s3.put_object(Bucket=BUCKET, Key="t/secret.csv", Body=b"id\n1\n")
    without_read_access()
    with pytest.raises(InvalidSpecError, match=rf"s3://{BUCKET}/t/secret.csv: access denied"):
        tables.open_table(f"s3://{BUCKET}/t/secret.csv")


def test_corrupt_local_parquet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(_parquet(ROWS)[:-20])
    with pytest.raises(InvalidSpecError, match=rf"{path} is not a readable Parquet file"):
        tables.open_table(str(path))


def test_s3_fingerprint_is_one_head_request_and_follows_the_content(s3) -> None:
    uri = f"s3://{BUCKET}/t/fingerprinted.csv"
    s3.put_object(Bucket=BUCKET, Key="t/fingerprinted.csv", Body=b"id\n1\n")
    calls: list[str] = []
    s3.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    first = stat_object(uri, "source", s3)
    assert calls == ["HeadObject"] and first.size == 5 and first.etag
    s3.put_object(Bucket=BUCKET, Key="t/fingerprinted.csv", Body=b"id\n2\n")
    assert stat_object(uri, "source", s3).fingerprint != first.fingerprint
    assert tables.source_fingerprint(uri) == stat_object(uri, "source", s3).fingerprint


def test_versioned_object_fingerprint_names_its_version(s3) -> None:
    s3.create_bucket(Bucket="flywheel-versioned")
    s3.put_bucket_versioning(
        Bucket="flywheel-versioned", VersioningConfiguration={"Status": "Enabled"}
    )
    put = s3.put_object(Bucket="flywheel-versioned", Key="a.csv", Body=b"id\n1\n")
    assert f"version={put['VersionId']}" in tables.source_fingerprint(
        "s3://flywheel-versioned/a.csv"
    )


def test_local_fingerprint_is_the_content_digest(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("id\n1\n")
    second.write_text("id\n1\n")
    assert tables.source_fingerprint(str(first)) == tables.source_fingerprint(str(second))
    second.write_text("id\n2\n")
    assert tables.source_fingerprint(str(first)) != tables.source_fingerprint(str(second))
