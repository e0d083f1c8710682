"""Cut local line-record inputs of a batch transform into parts, and join the predictions back in order.

With ``SplitType: None`` SageMaker sends each input object as one request, which must fit in
``MaxPayloadInMB``, and it hands whole objects to instances, so one big file is both refused and
scored by a single instance. Cutting every file into parts that fit spreads the parts over the
instances and lets predictions be joined back per original file: SageMaker writes
``<part>.out`` per part. Scoring files in ``LINE_RECORD_TYPES`` hold one record per line and
nothing else (``text/csv`` without a header, JSON Lines with one array per line, and with
``SplitType: Line`` JSON too, one array per line, as ``components/data/payloads.py`` writes them), so a
part is a run of whole records, and the same parts serve ``SplitType: Line`` and ``None``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

PART_SUFFIX = ".part-{index:05d}"
LINE_RECORD_TYPES = ("text/csv", "application/jsonlines")


def is_line_record(content_type: str, split_type: str) -> bool:
    """Whether a scoring file of ``content_type`` holds one record per line and nothing else."""
    return content_type in LINE_RECORD_TYPES or (
        split_type == "Line" and content_type == "application/json"
    )


@dataclass(frozen=True)
class ShardedInput:
    """The folder to upload, and for each original file the part names in order."""

    folder: Path
    parts: dict[str, list[str]]


def _part_count(size: int, rows: int, max_bytes: int, instances: int) -> int:
    by_payload = math.ceil(size / max_bytes) if max_bytes else 1
    return max(1, min(rows, max(by_payload, instances)))


def shard_record_files(
    source: Path, target: Path, *, max_bytes: int, instances: int
) -> ShardedInput:
    """Each line-record file of ``source`` as parts in ``target`` of at most ``max_bytes`` where possible.

    Rows are dealt out in order, the same number to each part; ``max_bytes`` 0 means no limit. A
    single row larger than the limit stays in a part of its own, and SageMaker will refuse it.
    """
    target.mkdir(parents=True, exist_ok=True)
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    parts: dict[str, list[str]] = {}
    for path in files:
        relative = path.name if source.is_file() else str(path.relative_to(source))
        rows = path.read_text().splitlines(keepends=True)
        count = _part_count(path.stat().st_size, len(rows), max_bytes, instances)
        per_part = math.ceil(len(rows) / count) if rows else 0
        names = []
        for index in range(count):
            name = relative + PART_SUFFIX.format(index=index)
            chunk = rows[index * per_part : (index + 1) * per_part]
            out = target / name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("".join(chunk))
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
