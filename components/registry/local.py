"""A model registry in a folder: safe with two writers, and atomic.

Layout under the root::

    <name>/.lock                       flock'ed around every write
    <name>/versions/<n>/version.json   the version's record
    <name>/versions/<n>/model.tar.gz   a copy of the model archive
    <name>/champion.json               which version is champion, and the promotion that made it
    <name>/history.jsonl               every promotion, for "who was champion when"

A version is written into a staging folder and renamed into ``versions/`` in one step, so a
crash or a failed copy leaves no half-written version: readers never see staging folders.

A promotion commits by replacing ``champion.json`` alone (one rename). The stages in the
``version.json`` files and the history line follow it, and readers take every stage from
``champion.json``, so a promotion killed half-way is still whole to a reader; the next write
(or ``recover``) brings the files that follow it up to date and removes what a killed writer left.

Approval decisions are written the same way. One that leaves the champion where it is replaces
that version's ``version.json`` alone. One that moves the champion (approving a version newer than
it, rejecting it, a promotion and the rejections a rollback makes) is carried whole by the
``champion.json`` entry (``approvals``: version -> audit entry): readers apply it, and ``recover``
writes it into the ``version.json`` files, once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
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

from flywheel.components.contract.packaging import MODEL_ARCHIVE, sha256_of_file
from flywheel.components.errors import InvalidSpecError, RegistryError
from flywheel.components.registry.base import (
    ApprovalStatus,
    ModelVersion,
    Registration,
    approval_record,
    approval_status,
    check_approvable,
)

# SageMaker model package group names follow the same rule, so a name works in both registries.
_MODEL_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
VERSION_FILE = "version.json"
CHAMPION_FILE = "champion.json"
HISTORY_FILE = "history.jsonl"
# What a writer killed mid-way leaves behind; only a writer holding the lock creates them.
_LEFTOVERS = (".staging-*", f".{CHAMPION_FILE}.*", f"versions/*/.{VERSION_FILE}.*")


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


def _stage(record: ModelVersion, champion: int | None) -> str:
    """The stage ``champion.json`` implies: a champion it no longer names has been archived."""
    if record.version == champion:
        return "champion"
    return "archived" if record.stage == "champion" else record.stage


def _with_decision(record: dict[str, Any], decision: Mapping[str, str] | None) -> dict[str, Any]:
    """``record`` (a version.json) with ``decision`` applied, unless its trail already holds it."""
    trail = [dict(entry) for entry in record.get("approvals", [])]
    if decision is None or dict(decision) in trail:
        return record
    return {**record, "approval": decision["status"], "approvals": [*trail, dict(decision)]}


def _decision_for(entry: Mapping[str, Any] | None, version: int) -> Mapping[str, str] | None:
    """The approval decision a ``champion.json`` entry carries for ``version``, if any."""
    return None if entry is None else entry.get("approvals", {}).get(str(version))


def _trail(version: ModelVersion) -> dict[str, Any]:
    """The approval fields of ``version`` as version.json keeps them (old files lack them)."""
    return {"approval": version.approval, "approvals": [dict(a) for a in version.approvals]}


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

    def _read_version(self, folder: Path, entry: Mapping[str, Any] | None) -> ModelVersion:
        written = ModelVersion.from_dict(json.loads((folder / VERSION_FILE).read_text()))
        # A decision committed in champion.json counts before recover copies it into the file.
        record = ModelVersion.from_dict(
            _with_decision(written.to_dict(), _decision_for(entry, written.version))
        )
        champion = None if entry is None else entry["version"]
        return replace(record, stage=_stage(record, champion))

    def _champion_entry(self, name: str) -> dict[str, Any] | None:
        pointer = self._model_dir(name) / CHAMPION_FILE
        return json.loads(pointer.read_text()) if pointer.is_file() else None

    def _champion_number(self, name: str) -> int | None:
        entry = self._champion_entry(name)
        return None if entry is None or entry["version"] is None else int(entry["version"])

    def versions(self, name: str) -> list[ModelVersion]:
        folder = self._model_dir(name) / "versions"
        if not folder.is_dir():
            return []
        entry = self._champion_entry(name)
        numbered = sorted((int(p.name), p) for p in folder.iterdir() if p.name.isdigit())
        return [self._read_version(path, entry) for _, path in numbered]

    def get(self, name: str, version: int) -> ModelVersion:
        folder = self._model_dir(name) / "versions" / str(version)
        if not (folder / VERSION_FILE).is_file():
            known = [v.version for v in self.versions(name)]
            raise RegistryError(
                f"model {name} has no version {version}; versions: {known or 'none'}"
            )
        return self._read_version(folder, self._champion_entry(name))

    def champion(self, name: str) -> ModelVersion | None:
        number = self._champion_number(name)
        return None if number is None else self.get(name, number)

    def state_fingerprint(self, name: str) -> str | None:
        """A digest of what ``name`` holds: each version's number, model digest and approval
        status, and which is champion; None while it holds nothing. Equal digests mean a step
        reading it sees the same."""
        versions = self.versions(name)
        if not versions:
            return None
        state = {
            "versions": [[v.version, v.model_sha256, v.approval] for v in versions],
            "champion": self._champion_number(name),
        }
        return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()

    def champion_history(self, name: str) -> list[dict[str, Any]]:
        """Every change of champion in order: ``{"version", "previous", "promoted_at", "reason",
        "by", "approvals"}``; ``version`` is None when a rejection left no Approved version."""
        history = self._model_dir(name) / HISTORY_FILE
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
                self._recover_locked(name, folder)
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

    def promote(
        self,
        name: str,
        version: int,
        reason: str = "",
        *,
        by: str = "flywheel",
        force: bool = False,
    ) -> ModelVersion:
        with self._locked(name) as folder:
            target = self.get(name, version)
            check_approvable(target, "Approved", force=force)
            if self._champion_number(name) == version:
                return target
            decisions = {version: approval_record("Approved", by, reason)}
            for newer in self.versions(name):
                if newer.version > version and newer.approval == "Approved":
                    note = f"rolled back to version {version}" + (f": {reason}" if reason else "")
                    decisions[newer.version] = approval_record("Rejected", by, note)
            self._move_champion(name, folder, version, decisions, reason, by)
        return self.get(name, version)

    def set_approval(
        self,
        name: str,
        version: int,
        status: str,
        *,
        by: str,
        note: str = "",
        force: bool = False,
    ) -> ModelVersion:
        decided = approval_status(status)
        with self._locked(name) as folder:
            target = self.get(name, version)
            check_approvable(target, decided, force=force)
            decision = approval_record(decided, by, note)
            champion = self._champion_after(name, target, decided)
            if champion == self._champion_number(name):
                path = folder / "versions" / str(version) / VERSION_FILE
                record = json.loads(path.read_text())
                _write_json_atomically(path, _with_decision({**record, **_trail(target)}, decision))
            else:
                reason = f"version {version} {decided}" + (f": {note}" if note else "")
                self._move_champion(name, folder, champion, {version: decision}, reason, by)
        return self.get(name, version)

    def _champion_after(
        self, name: str, target: ModelVersion, status: ApprovalStatus
    ) -> int | None:
        """The newest Approved version once ``target`` has ``status``."""
        approved = {v.version for v in self.versions(name) if v.approval == "Approved"}
        if status == "Approved":
            approved.add(target.version)
        else:
            approved.discard(target.version)
        return max(approved, default=None)

    def _move_champion(
        self,
        name: str,
        folder: Path,
        version: int | None,
        decisions: Mapping[int, Mapping[str, str]],
        reason: str,
        by: str,
    ) -> None:
        """Commit a new champion and the decisions that come with it, in one rename."""
        entry = {
            "version": version,
            "previous": self._champion_number(name),
            "promoted_at": _now(),
            "reason": reason,
            "by": by,
            "approvals": {str(number): dict(d) for number, d in decisions.items()},
        }
        _write_json_atomically(folder / CHAMPION_FILE, entry)  # the commit point
        self._recover_locked(name, folder)

    def recover(self, name: str) -> None:
        """Finish what a killed writer left: stages and history as ``champion.json`` says."""
        if (self._model_dir(name) / "versions").is_dir():
            with self._locked(name):
                pass  # taking the lock recovers

    def _recover_locked(self, name: str, folder: Path) -> None:
        for pattern in _LEFTOVERS:
            for leftover in folder.glob(pattern):
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
        entry = self._champion_entry(name)
        if entry is None:
            return
        for path in (folder / "versions").glob(f"*/{VERSION_FILE}"):
            record = json.loads(path.read_text())
            version = ModelVersion.from_dict(record)
            followed = _with_decision(
                {**record, **_trail(version)}, _decision_for(entry, version.version)
            )
            followed["stage"] = _stage(version, entry["version"])
            if followed != record:
                _write_json_atomically(path, followed)
        history = self.champion_history(name)
        if not history or history[-1] != entry:
            with (folder / HISTORY_FILE).open("a") as lines:
                lines.write(json.dumps(entry, sort_keys=True) + "\n")
