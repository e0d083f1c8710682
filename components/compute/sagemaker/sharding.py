"""Cut local line-record inputs of a batch transform into parts by bytes, and join the predictions back.

Every request a transform job sends must fit ``MaxPayloadInMB``; SageMaker fails the job, after
training has run, when one does not. With ``SplitType: None`` a request is a whole input object,
and SageMaker hands whole objects to instances, so one big file is both refused and scored by a
single instance. Scoring files of ``compute.backend.LINE_RECORD_TYPES`` hold one record per line and nothing else
(``text/csv`` without a header, JSON Lines with one array per line, and with ``SplitType: Line``
JSON too, one array per line, as ``components/data/payloads.py`` writes them), so cutting such a
file between lines keeps its meaning: each part is a run of whole records, SageMaker writes
``<part>.out`` per part, and the predictions are joined back per original file in row order. The
same parts serve ``SplitType: Line`` (any ``BatchStrategy``) and ``None``.

Parts are cut by bytes, never by row count: with uneven rows, an even count of rows per part can
put most of the bytes in one part. What cannot be cut is refused before any job starts: a record
larger than the limit, and with ``SplitType: None`` an object that is not line records and is
larger than the limit (``check_object_sizes``).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flywheel.components.errors import InvalidSpecError

PART_SUFFIX = ".part-{index:05d}"
_PAYLOAD_FIELD = "compute_config.max_payload_mb"


def check_object_sizes(sizes: Mapping[str, int], max_bytes: int) -> None:
    """Refuse an input object that ``SplitType: None`` would send whole, over ``max_bytes``.

    Only for objects that cannot be cut into records here (binary bodies, a JSON document, or
    inputs already on S3); ``max_bytes`` 0 means no limit.
    """
    for name, size in sorted(sizes.items()):
        if max_bytes and size > max_bytes:
            raise InvalidSpecError(
                _PAYLOAD_FIELD,
                f"{name} is {size} bytes, over MaxPayloadInMB ({max_bytes} bytes, 1 MB read as "
                "10^6 bytes); with split_type None SageMaker sends each object as one request: "
                "raise max_payload_mb, or give line records (text/csv, application/jsonlines) "
                "from a local folder, which Flywheel cuts into parts that fit",
            )


@dataclass(frozen=True)
class ShardedInput:
    """The folder to upload, and for each original file the part names in order."""

    folder: Path
    parts: dict[str, list[str]]


def _balanced(sizes: list[int], count: int) -> list[tuple[int, int]]:
    """``count`` non-empty runs of rows (start, stop) with about the same bytes in each."""
    offsets = list(itertools.accumulate(sizes, initial=0))
    share = offsets[-1] / count
    bounds = [0]
    for index in range(1, count):
        cut = bisect.bisect_left(offsets, index * share)
        # Every run keeps at least one row, and leaves at least one for each run after it.
        bounds.append(min(max(cut, bounds[-1] + 1), len(sizes) - (count - index)))
    bounds.append(len(sizes))
    return list(itertools.pairwise(bounds))


def _within(sizes: list[int], start: int, stop: int, max_bytes: int) -> list[tuple[int, int]]:
    """Rows ``start:stop`` as the fewest runs of at most ``max_bytes`` each (0: one run)."""
    if not max_bytes:
        return [(start, stop)]
    runs = []
    first, size = start, 0
    for row in range(start, stop):
        if row > first and size + sizes[row] > max_bytes:
            runs.append((first, row))
            first, size = row, 0
        size += sizes[row]
    runs.append((first, stop))
    return runs


def cut_records(sizes: list[int], *, max_bytes: int, instances: int) -> list[tuple[int, int]]:
    """Runs of rows (start, stop), in order: each at most ``max_bytes``, and one per instance.

    The rows are first dealt into ``instances`` runs of about equal bytes (fewer when there are
    fewer rows), so every instance gets work; each run is then cut where it would pass
    ``max_bytes`` (0 means no limit). The caller refuses a row larger than ``max_bytes``.
    """
    if not sizes:
        return [(0, 0)]
    count = max(1, min(len(sizes), instances))
    return [
        run
        for start, stop in _balanced(sizes, count)
        for run in _within(sizes, start, stop, max_bytes)
    ]


def shard_record_files(
    source: Path, target: Path, *, max_bytes: int, instances: int
) -> ShardedInput:
    """Each line-record file of ``source`` as parts in ``target`` of at most ``max_bytes`` bytes.

    Parts are runs of whole lines, cut by bytes (``cut_records``); ``max_bytes`` 0 means no limit.
    A line larger than ``max_bytes`` is refused, naming the file and line: SageMaker would fail
    the job on it, whatever the split type and batch strategy.
    """
    target.mkdir(parents=True, exist_ok=True)
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    parts: dict[str, list[str]] = {}
    for path in files:
        relative = path.name if source.is_file() else str(path.relative_to(source))
        rows = path.read_bytes().splitlines(keepends=True)
        sizes = [len(row) for row in rows]
        for number, size in enumerate(sizes, 1):
            if max_bytes and size > max_bytes:
                raise InvalidSpecError(
                    _PAYLOAD_FIELD,
                    f"record {number} of {relative} is {size} bytes, over MaxPayloadInMB "
                    f"({max_bytes} bytes, 1 MB read as 10^6 bytes); SageMaker would fail the "
                    "job on it: raise max_payload_mb",
                )
        names = []
        for index, (start, stop) in enumerate(
            cut_records(sizes, max_bytes=max_bytes, instances=instances)
        ):
            name = relative + PART_SUFFIX.format(index=index)
            out = target / name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(b"".join(rows[start:stop]))
            names.append(name)
        parts[relative] = names
    return ShardedInput(target, parts)


def join_predictions(downloaded: Path, sharded: ShardedInput, target: Path) -> list[Path]:
    """``<file>.out`` in ``target`` for each original file: its parts' predictions, in order."""
    written = []
    for original, names in sharded.parts.items():
        out = target / f"{original}.out"
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w") as joined:
            for name in names:
                text = (downloaded / f"{name}.out").read_text()
                joined.write(text if not text or text.endswith("\n") else text + "\n")
        written.append(out)
    return written
