"""One reader for every table Flywheel reads: a local path or ``s3://bucket/key``, CSV or Parquet.

Tables stream as Arrow record batches, so a step's memory follows the batch size, not the table.
S3 goes through pyarrow's S3 filesystem with the default credential chain (IRSA on EKS);
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` points it at another endpoint, as botocore does.
CSV columns are read as text, so an id such as ``007`` reaches the model as written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.fs as pa_fs
import pyarrow.parquet as pq

from flywheel.components.contract.packaging import sha256_of_file
from flywheel.components.errors import InvalidSpecError

BUILTIN_PREFIX = "builtin:"
S3_PREFIX = "s3://"
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
PARQUET_MAGIC = b"PAR1"
BATCH_ROWS = 1 << 16
# pyarrow reads a CSV about 32 blocks ahead of its reader: this bounds that buffer near 32 MiB.
CSV_BLOCK_BYTES = 1 << 20
_CSV_WRITE = pa_csv.WriteOptions(quoting_style="needed")


@dataclass(frozen=True)
class TableStream:
    """A table's schema, its row count where the file states it, and a way to stream its rows."""

    uri: str
    format: str
    schema: pa.Schema
    num_rows: int | None
    _open: Callable[[Sequence[str] | None], Iterator[pa.RecordBatch]]

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def batches(self, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
        """Record batches in file order; a broken file fails with one line naming the URI."""
        try:
            yield from self._open(columns)
        except (pa.ArrowInvalid, OSError) as error:
            raise _unreadable(self.uri, self.format, error) from None

    def read(self) -> pa.Table:
        """The whole table in memory (for small tables, or a sort that needs every row)."""
        return pa.Table.from_batches(list(self.batches()), schema=self.schema)


def table_format(uri: str, field: str = "source") -> str:
    """``csv`` or ``parquet`` by the file's suffix; anything else is refused.

    A local file with no suffix at all (a KFP artifact) is told by Parquet's magic bytes.
    """
    suffix = Path(uri.removeprefix(S3_PREFIX)).suffix.lower()
    if not suffix and not uri.startswith(S3_PREFIX):
        with open(uri, "rb") as handle:
            return "parquet" if handle.read(4) == PARQUET_MAGIC else "csv"
    if suffix not in FORMATS:
        raise InvalidSpecError(
            field, f"{uri} is neither CSV (.csv) nor Parquet (.parquet, .pq); give a table file"
        )
    return FORMATS[suffix]


def open_table(source: str, field: str = "source") -> TableStream:
    """Open ``source`` (a path, ``s3://bucket/key`` or ``builtin:<name>``) without reading its rows."""
    if source.startswith(BUILTIN_PREFIX):
        from flywheel.components.data.datasets import load_builtin

        return in_memory(source, load_builtin(source.removeprefix(BUILTIN_PREFIX)))
    if not source.startswith(S3_PREFIX) and not Path(source).is_file():
        raise InvalidSpecError(
            field,
            f"{source} does not exist (give a CSV or Parquet file, s3://bucket/key or builtin:<name>)",
        )
    kind = table_format(source, field)
    filesystem, path = _filesystem(source, field)
    try:
        if kind == "parquet":
            return _open_parquet(source, filesystem, path)
        return _open_csv(source, filesystem, path)
    except (pa.ArrowInvalid, OSError) as error:
        raise _unreadable(source, kind, error, field) from None


def in_memory(uri: str, table: pa.Table) -> TableStream:
    """A table already in memory, streamed like a file."""
    return TableStream(
        uri=uri,
        format="table",
        schema=table.schema,
        num_rows=table.num_rows,
        _open=lambda columns: iter(
            (table if columns is None else table.select(list(columns))).to_batches(BATCH_ROWS)
        ),
    )


def source_fingerprint(source: str) -> str:
    """What identifies the source's content, for the pipeline cache, without parsing the table.

    An S3 object is known by its metadata (ETag, size, version id: one HEAD request, nothing
    downloaded), a local file by the SHA-256 of its bytes, a built-in dataset by the version of
    the package that ships it.
    """
    if source.startswith(BUILTIN_PREFIX):
        from importlib.metadata import version

        return f"{source}@rdkit-{version('rdkit')}"
    if source.startswith(S3_PREFIX):
        from flywheel.components.data.s3_objects import stat_object

        return stat_object(source, "source").fingerprint
    return f"sha256:{sha256_of_file(Path(source))}"


def _open_parquet(uri: str, filesystem: pa_fs.FileSystem, path: str) -> TableStream:
    metadata = pq.ParquetFile(filesystem.open_input_file(path))

    def batches(columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        with filesystem.open_input_file(path) as handle:
            yield from pq.ParquetFile(handle).iter_batches(
                batch_size=BATCH_ROWS, columns=list(columns) if columns is not None else None
            )

    return TableStream(
        uri=uri,
        format="parquet",
        schema=metadata.schema_arrow,
        num_rows=metadata.metadata.num_rows,
        _open=batches,
    )


def _open_csv(uri: str, filesystem: pa_fs.FileSystem, path: str) -> TableStream:
    with filesystem.open_input_stream(path) as handle:
        names = pa_csv.open_csv(handle).schema.names
    text = {name: pa.string() for name in names}

    def batches(columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        options = pa_csv.ConvertOptions(
            column_types=text,
            include_columns=list(columns) if columns is not None else None,
            strings_can_be_null=False,
        )
        with filesystem.open_input_stream(path) as handle:
            yield from pa_csv.open_csv(
                handle,
                read_options=pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                convert_options=options,
            )

    schema = pa.schema([(name, pa.string()) for name in names])
    return TableStream(uri=uri, format="csv", schema=schema, num_rows=None, _open=batches)


def _filesystem(uri: str, field: str) -> tuple[pa_fs.FileSystem, str]:
    """The filesystem holding ``uri``; an S3 object is looked up first, so errors say what is wrong."""
    if not uri.startswith(S3_PREFIX):
        path = Path(uri)
        if not path.is_file():
            raise InvalidSpecError(
                field,
                f"{uri} does not exist (give a table file, s3://bucket/key or builtin:<name>)",
            )
        return pa_fs.LocalFileSystem(), str(path.resolve())
    from flywheel.components.compute.sagemaker.s3 import parse_s3_uri
    from flywheel.components.data.s3_objects import stat_object

    location = parse_s3_uri(field, uri)
    stat_object(uri, field)
    return s3_filesystem(location.bucket), f"{location.bucket}/{location.key}"


def s3_filesystem(bucket: str) -> pa_fs.S3FileSystem:
    """pyarrow's S3 client on the endpoint and region botocore would use."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region and not endpoint:
        region = pa_fs.resolve_s3_region(bucket)
    return pa_fs.S3FileSystem(endpoint_override=endpoint or None, region=region or "us-east-1")


def _unreadable(uri: str, kind: str, error: Exception, field: str = "source") -> InvalidSpecError:
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    name = {"parquet": "Parquet", "csv": "CSV"}.get(kind, "table")
    return InvalidSpecError(field, f"{uri} is not a readable {name} file: {first_line}")


def csv_writer(path: Path, schema: pa.Schema) -> pa_csv.CSVWriter:
    """An open CSV writer with a header, for a file filled batch by batch."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return pa_csv.CSVWriter(str(path), schema, write_options=_CSV_WRITE)


def write_csv(path: Path, table: pa.Table) -> Path:
    """Write ``table`` as CSV with a header."""
    with csv_writer(path, table.schema) as writer:
        writer.write_table(table)
    return path
