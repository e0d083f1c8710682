"""A model registry in a folder: safe with two writers, and atomic.

Layout under the root::

    <name>/.lock                       flock'ed around every write
    <name>/versions/<n>/version.json   the version's record
    <name>/versions/<n>/model.tar.gz   a copy of the model archive
    <name>/champion.json               which version is champion (replaced atomically)
    <name>/history.jsonl               every promotion, for "who was champion when"

A version is written into a staging folder and renamed into ``versions/`` in one step, so a
crash or a failed copy leaves no half-written version: readers never see staging folders.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flywheel.components.errors import InvalidSpecError, RegistryError
from flywheel.components.packaging import MODEL_ARCHIVE, sha256_of_file
from flywheel.components.registry.base import ModelVersion, Registration

# SageMaker model package group names follow the same rule, so a name works in both registries.
_MODEL_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
VERSION_FILE = "version.json"


def validate_model_name(name: str) -> str:
    if not _MODEL_NAME.match(name):
        raise InvalidSpecError(
            "model_name",
            f"{name!r} is not allowed: use 1-63 letters, digits and hyphens, "
            "starting and ending with a letter or digit",
        )
    return name


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_json_atomically(path: Path, payload: Any) -> None:
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    partial.write_text(json.dumps(payload, indent=2, sort_keys=True))
    os.replace(partial, path)


class LocalModelRegistry:
    """The registry of the embedded default; ``uri`` is its root folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    # -- reads -------------------------------------------------------------------------------

    def _model_dir(self, name: str) -> Path:
        return self.root / validate_model_name(name)

    def _read_version(self, folder: Path, champion: int | None) -> ModelVersion:
        record = ModelVersion.from_dict(json.loads((folder / VERSION_FILE).read_text()))
        if record.version == champion:
            return replace(record, stage="champion")
        return record

    def _champion_number(self, name: str) -> int | None:
        pointer = self._model_dir(name) / "champion.json"
        if not pointer.is_file():
            return None
        return int(json.loads(pointer.read_text())["version"])

    def versions(self, name: str) -> list[ModelVersion]:
        folder = self._model_dir(name) / "versions"
        if not folder.is_dir():
            return []
        champion = self._champion_number(name)
        numbered = sorted((int(p.name), p) for p in folder.iterdir() if p.name.isdigit())
        return [self._read_version(path, champion) for _, path in numbered]

    def get(self, name: str, version: int) -> ModelVersion:
        folder = self._model_dir(name) / "versions" / str(version)
        if not (folder / VERSION_FILE).is_file():
            known = [v.version for v in self.versions(name)]
            raise RegistryError(
                f"model {name} has no version {version}; versions: {known or 'none'}"
            )
        return self._read_version(folder, self._champion_number(name))

    def champion(self, name: str) -> ModelVersion | None:
        number = self._champion_number(name)
        return None if number is None else self.get(name, number)

    def champion_history(self, name: str) -> list[dict[str, Any]]:
        """Every promotion in order: ``{"version", "promoted_at", "reason"}``."""
        history = self._model_dir(name) / "history.jsonl"
        if not history.is_file():
            return []
        return [json.loads(line) for line in history.read_text().splitlines() if line.strip()]

    # -- writes ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[Path]:
        folder = self._model_dir(name)
        (folder / "versions").mkdir(parents=True, exist_ok=True)
        with (folder / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield folder
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def register(
        self,
        name: str,
        model_artifact: str,
        *,
        metrics: Mapping[str, float],
        hyperparameters: Mapping[str, Any],
        lineage: Mapping[str, Any],
    ) -> Registration:
        archive = Path(model_artifact)
        if not archive.is_file():
            raise InvalidSpecError("model_artifact", f"{model_artifact} is not a file")
        digest = sha256_of_file(archive)
        with self._locked(name) as folder:
            for existing in self.versions(name):
                if existing.model_sha256 == digest:
                    return Registration(existing, created=False)
            number = max((v.version for v in self.versions(name)), default=0) + 1
            staging = folder / f".staging-{uuid.uuid4().hex}"
            staging.mkdir()
            try:
                shutil.copyfile(archive, staging / MODEL_ARCHIVE)
                record = ModelVersion(
                    name=name,
                    version=number,
                    model_uri=str(folder / "versions" / str(number) / MODEL_ARCHIVE),
                    model_sha256=digest,
                    stage="candidate",
                    metrics=dict(metrics),
                    hyperparameters=dict(hyperparameters),
                    lineage=dict(lineage),
                    created_at=_now(),
                )
                (staging / VERSION_FILE).write_text(
                    json.dumps(record.to_dict(), indent=2, sort_keys=True)
                )
                staging.rename(folder / "versions" / str(number))
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return Registration(record, created=True)

    def promote(self, name: str, version: int, reason: str = "") -> ModelVersion:
        with self._locked(name) as folder:
            target = self.get(name, version)
            previous = self._champion_number(name)
            if previous == version:
                return target
            if previous is not None:
                self._set_stage(folder, previous, "archived")
            _write_json_atomically(folder / "champion.json", {"version": version})
            with (folder / "history.jsonl").open("a") as history:
                entry = {
                    "version": version,
                    "previous": previous,
                    "promoted_at": _now(),
                    "reason": reason,
                }
                history.write(json.dumps(entry, sort_keys=True) + "\n")
        return replace(target, stage="champion")

    def _set_stage(self, folder: Path, version: int, stage: str) -> None:
        record_path = folder / "versions" / str(version) / VERSION_FILE
        record = json.loads(record_path.read_text())
        record["stage"] = stage
        _write_json_atomically(record_path, record)
