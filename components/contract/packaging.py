"""Pack and unpack model archives the way SageMaker does.

SageMaker tars the *contents* of ``/opt/ml/model`` (no top-level folder) into ``model.tar.gz``;
serving containers unpack it into the model directory. Doing the same locally means an archive
made by any backend loads on any other.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tarfile
from pathlib import Path

from flywheel.components.errors import InvalidSpecError

MODEL_ARCHIVE = "model.tar.gz"
OUTPUT_ARCHIVE = "output.tar.gz"
SOURCE_ARCHIVE = "sourcedir.tar.gz"


def pack_folder(folder: Path, archive: Path) -> Path:
    """Write ``archive`` holding the contents of ``folder`` as byte-reproducible ``tar.gz``.

    The archive's digest is an identity (job names, S3 keys, registry versions), so only content
    may change it: entries are sorted, owner, times and modes are fixed, and the gzip header
    carries neither a time nor a file name. The same files give the same bytes on any machine.
    """
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    with (
        partial.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix()):
            info = _reproducible_info(tar, path, path.relative_to(folder).as_posix())
            if info.isfile():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    partial.replace(archive)
    return archive


def _reproducible_info(tar: tarfile.TarFile, path: Path, name: str) -> tarfile.TarInfo:
    """The entry's header with everything but name, type, size and executability fixed."""
    info = tar.gettarinfo(str(path), arcname=name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.pax_headers = {}
    if info.isdir() or info.issym():
        info.mode = 0o755
    else:
        info.mode = 0o755 if info.mode & 0o111 else 0o644
    return info


def pack_source(source_dir: Path, scratch: Path) -> Path:
    """``source_dir`` as ``sourcedir.tar.gz``, byte-reproducible, as SageMaker framework containers expect."""
    if not source_dir.is_dir():
        raise InvalidSpecError("source_dir", f"{source_dir} is not a folder")
    # Bytecode caches differ between machines and runs; leaving them out keeps the digest stable.
    copy = shutil.copytree(
        source_dir, scratch / "source", ignore=shutil.ignore_patterns("__pycache__")
    )
    return pack_folder(copy, scratch / SOURCE_ARCHIVE)


def code_with_dependencies(source_dir: Path, dependencies: tuple[Path, ...], scratch: Path) -> Path:
    """``source_dir`` with each dependency folder beside its files, under the folder's own name.

    That is where the SageMaker SDK puts ``dependencies`` in ``sourcedir.tar.gz``, whose root is
    the working folder (and so on ``sys.path``): ``import my_library`` works. Without
    dependencies, ``source_dir`` itself.
    """
    if not dependencies:
        return source_dir
    folder = shutil.copytree(
        source_dir, scratch / "code", ignore=shutil.ignore_patterns("__pycache__")
    )
    for dependency in dependencies:
        if (folder / dependency.name).exists():
            raise InvalidSpecError(
                "serving.dependencies",
                f"{dependency.name} is also a file or folder of {source_dir}",
            )
        shutil.copytree(
            dependency, folder / dependency.name, ignore=shutil.ignore_patterns("__pycache__")
        )
    return folder


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


def code_digest(source_dir: Path, dependencies: tuple[Path, ...] = ()) -> str:
    """The digest of the code a job ships: the source folder and each dependency folder by name."""
    if not dependencies:
        return sha256_of_tree(source_dir)
    parts = [sha256_of_tree(source_dir), *(f"{d.name}:{sha256_of_tree(d)}" for d in dependencies)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
