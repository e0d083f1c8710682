"""The evaluation history: what each evaluation measured, published and decided.

It is what makes the loop idempotent — an evaluation of the same batch by the same model version
publishes its data point once and fires at most one retrain — and what ``flywheel report`` draws.
One JSON line per record, appended under an exclusive lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flywheel.components.registry.local import validate_model_name


def evaluation_key(model_version: int, batch_sha256: str) -> str:
    """One model version scoring one batch's exact bytes: the unit of idempotence."""
    return f"v{model_version}:{batch_sha256[:16]}"


class EvaluationHistory:
    """Records per model under ``root``: ``<model>.jsonl``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def _file(self, model_name: str) -> Path:
        return self.root / f"{validate_model_name(model_name)}.jsonl"

    @contextlib.contextmanager
    def _locked(self, model_name: str) -> Iterator[Path]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / f".{model_name}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self._file(model_name)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def records(self, model_name: str, kind: str | None = None) -> list[dict[str, Any]]:
        path = self._file(model_name)
        if not path.is_file():
            return []
        entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [e for e in entries if kind is None or e["kind"] == kind]

    def append_once(self, model_name: str, kind: str, key: str, fields: Mapping[str, Any]) -> bool:
        """Append a ``kind`` record for ``key`` unless one exists; True when this call wrote it."""
        with self._locked(model_name) as path:
            if any(e["key"] == key for e in self.records(model_name, kind)):
                return False
            self._write(path, kind, key, fields)
            return True

    def append(self, model_name: str, kind: str, key: str, fields: Mapping[str, Any]) -> None:
        with self._locked(model_name) as path:
            self._write(path, kind, key, fields)

    @staticmethod
    def _write(path: Path, kind: str, key: str, fields: Mapping[str, Any]) -> None:
        record = {
            "kind": kind,
            "key": key,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            **fields,
        }
        with path.open("a") as history:
            history.write(json.dumps(record, sort_keys=True) + "\n")
