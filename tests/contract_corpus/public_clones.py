"""Public files nobody here wrote, read byte for byte from clones of their repositories.

Their code is never committed to this repository. A test names each file by repository, path and
SHA-256 at a pinned commit (:class:`UpstreamFile`), and reads it from the folder of clones
``SAGEMAKER_PUBLIC_CHECKOUTS`` names, where each clone sits as ``git clone`` names it
(``<checkouts>/<repository>/<path>``). Without that folder the test is skipped in one line that
names the variable; a file that differs by one byte fails, naming the file and its digest.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

# A folder holding a clone of each public repository below, named as `git clone` names it.
CHECKOUTS_VARIABLE = "SAGEMAKER_PUBLIC_CHECKOUTS"


@dataclass(frozen=True)
class Repository:
    """A public repository of aws, at the commit whose bytes the cases pin."""

    name: str
    commit: str

    @property
    def url(self) -> str:
        return f"https://github.com/aws/{self.name}"


EXAMPLES = Repository("amazon-sagemaker-examples", "2d519b52c3a2c2361f2b87f0d3de46fd6c0232a5")
PYTORCH_TOOLKIT = Repository(
    "sagemaker-pytorch-training-toolkit", "d9298721b3bbe28be2c008a11586ce9bec379679"
)
# Tag v2.257.6: the last V2 layout, before the V3 restructure moved its test data.
PYTHON_SDK = Repository("sagemaker-python-sdk", "fc582aaa46faf7b7e16ab1e13840869712174cd0")
# Every clone the folder should hold, as the skip message lists them.
REPOSITORIES = (EXAMPLES, PYTORCH_TOOLKIT, PYTHON_SDK)


@dataclass(frozen=True)
class UpstreamFile:
    """One file of a public repository at its pinned commit, staged as ``name``.

    ``notebook_cell``: the file is what that notebook cell's ``%%writefile <name>`` writes.
    """

    repository: Repository
    name: str
    path: str
    sha256: str
    notebook_cell: int | None = None

    def read(self, checkouts: Path) -> bytes:
        """The file's bytes, checked against the pinned digest."""
        where = checkouts / self.repository.name / self.path
        if not where.is_file():
            pytest.fail(
                f"{where} is missing: clone {self.repository.url} into "
                f"{checkouts / self.repository.name} and check out {self.repository.commit}"
            )
        raw = where.read_bytes()
        content = raw if self.notebook_cell is None else self._written_by_cell(raw)
        digest = hashlib.sha256(content).hexdigest()
        if digest != self.sha256:
            pytest.fail(
                f"{where} is not the pinned file (sha256 {digest}, pinned {self.sha256}); "
                f"check out {self.repository.commit} of {self.repository.url}"
            )
        return content

    def _written_by_cell(self, raw: bytes) -> bytes:
        if self.notebook_cell is None:
            return raw
        cell = "".join(json.loads(raw)["cells"][self.notebook_cell]["source"])
        magic, _, body = cell.partition("\n")
        assert magic == f"%%writefile {self.name}", (
            f"{self.path} cell {self.notebook_cell}: {magic}"
        )
        return body.encode()


def public_checkouts() -> Path:
    """The folder of public clones, or a skip that says how to get them."""
    value = os.environ.get(CHECKOUTS_VARIABLE)
    if not value:
        clones = ", ".join(f"{r.url} at {r.commit[:12]}" for r in REPOSITORIES)
        pytest.skip(
            f"public script: set {CHECKOUTS_VARIABLE} to a folder of clones of {clones} "
            "(their code is not committed here)"
        )
    return Path(value)


def write_upstream(files: Iterable[UpstreamFile], folder: Path) -> Path:
    """``folder`` with each public file written into it by its ``name``, after its bytes are checked."""
    checkouts = public_checkouts()
    folder.mkdir(parents=True, exist_ok=True)
    for upstream in files:
        (folder / upstream.name).write_bytes(upstream.read(checkouts))
    return folder
