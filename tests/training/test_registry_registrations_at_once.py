"""The local registry's rule under concurrency: the same bytes registered at once give one version.

Two processes register at one barrier, and each is held for a second between its look and its
write (a slow copy of the archive, patched in the child only), so a registry that only looked
first would write the bytes twice. The folder lock around look-and-write is what prevents it.
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
from pathlib import Path
from typing import Any

from flywheel.components.registry import LocalModelRegistry

_copy = shutil.copyfile


def _slow_copy(source: Any, target: Any, **kwargs: Any) -> Any:
    time.sleep(1.0)
    return _copy(source, target, **kwargs)


def _register_at_barrier(root: str, archive: str, barrier: Any, results: Any) -> None:
    shutil.copyfile = _slow_copy  # this child process only
    registry = LocalModelRegistry(root)
    barrier.wait(timeout=60)
    registration = registry.register(
        "qsar", archive, metrics={"rmse": 0.5}, hyperparameters={}, lineage={}
    )
    results.put((registration.version.version, registration.created))


def _race(root: Path, archives: list[Path]) -> list[tuple[int, bool]]:
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(len(archives)), context.Queue()
    writers = [
        context.Process(target=_register_at_barrier, args=(str(root), str(a), barrier, results))
        for a in archives
    ]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=120)
        assert process.exitcode == 0
    return sorted(results.get(timeout=5) for _ in writers)


def test_the_same_bytes_registered_at_once_by_two_processes_give_one_version(tmp_path: Path):
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(b"same bytes")

    results = _race(tmp_path / "registry", [archive, archive])

    assert results == [(1, False), (1, True)]
    assert [v.version for v in LocalModelRegistry(tmp_path / "registry").versions("qsar")] == [1]


def test_different_bytes_registered_at_once_by_two_processes_give_two_versions(tmp_path: Path):
    archives = [tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"]
    archives[0].write_bytes(b"first")
    archives[1].write_bytes(b"second")

    results = _race(tmp_path / "registry", archives)

    assert results == [(1, True), (2, True)]
    versions = LocalModelRegistry(tmp_path / "registry").versions("qsar")
    assert len({v.model_sha256 for v in versions}) == 2
