"""Pack and unpack model archives the way SageMaker does.

SageMaker tars the *contents* of ``/opt/ml/model`` (no top-level folder) into ``model.tar.gz``;
serving containers unpack it into the model directory. Doing the same locally means an archive
made by any backend loads on any other.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

MODEL_ARCHIVE = "model.tar.gz"
OUTPUT_ARCHIVE = "output.tar.gz"


def pack_folder(folder: Path, archive: Path) -> Path:
    """Write ``archive`` holding the contents of ``folder``, sorted, so the bytes are reproducible."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_file():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    partial.replace(archive)
    return archive


def unpack_archive(archive: Path, folder: Path) -> Path:
    """Extract ``archive`` into ``folder``, refusing members that would escape it."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(folder, filter="data")
    return folder


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of_tree(folder: Path) -> str:
    """A digest of every file's relative path and bytes: the identity of a code folder."""
    digest = hashlib.sha256()
    for path in sorted(
        p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    ):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(b"\0")
        digest.update(sha256_of_file(path).encode())
    return digest.hexdigest()
