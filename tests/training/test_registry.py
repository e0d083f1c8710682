import json
import multiprocessing
import shutil
from pathlib import Path

import pytest

from flywheel.components.errors import InvalidSpecError, RegistryError
from flywheel.components.registry import LocalModelRegistry


def _archive(tmp_path: Path, content: str) -> Path:
    path = tmp_path / f"model-{abs(hash(content))}.tar.gz"
    path.write_bytes(content.encode())
    return path


def _register(registry: LocalModelRegistry, archive: Path, rmse: float = 1.0):
    return registry.register(
        "qsar",
        str(archive),
        metrics={"rmse": rmse},
        hyperparameters={"trees": 10},
        lineage={"run": {"id": "run-1"}},
    )


def test_versions_are_numbered_and_carry_metrics_and_lineage(tmp_path: Path) -> None:
    registry = LocalModelRegistry(tmp_path / "registry")
    first = _register(registry, _archive(tmp_path, "a"), rmse=0.9).version
    second = _register(registry, _archive(tmp_path, "b"), rmse=0.8).version
    assert [v.version for v in registry.versions("qsar")] == [1, 2]
    assert second.metrics == {"rmse": 0.8}
    assert registry.get("qsar", 1).lineage == {"run": {"id": "run-1"}}
    assert first.stage == "candidate"
    assert Path(first.model_uri).read_bytes() == b"a"


def test_registering_the_same_model_bytes_twice_returns_the_existing_version(
    tmp_path: Path,
) -> None:
    registry = LocalModelRegistry(tmp_path)
    archive = _archive(tmp_path, "same")
    assert _register(registry, archive).created
    again = _register(registry, archive)
    assert not again.created
    assert again.version.version == 1
    assert len(registry.versions("qsar")) == 1


def test_a_failed_copy_leaves_no_version_and_no_staging_folder(tmp_path: Path, monkeypatch) -> None:
    registry = LocalModelRegistry(tmp_path / "registry")

    def disk_full(*_args, **_kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(shutil, "copyfile", disk_full)
    with pytest.raises(OSError, match="No space"):
        _register(registry, _archive(tmp_path, "a"))
    assert registry.versions("qsar") == []
    assert not list((tmp_path / "registry/qsar").glob(".staging-*"))
    assert not list((tmp_path / "registry/qsar/versions").iterdir())


def _register_many(root: str, folder: str, writer: int, count: int) -> None:
    registry = LocalModelRegistry(root)
    for index in range(count):
        archive = Path(folder) / f"w{writer}-{index}.tar.gz"
        archive.write_bytes(f"{writer}-{index}".encode())
        _register(registry, archive)


def test_two_writers_never_lose_or_share_a_version_number(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    writers = [
        context.Process(target=_register_many, args=(str(tmp_path / "reg"), str(tmp_path), w, 15))
        for w in (1, 2)
    ]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=120)
        assert process.exitcode == 0
    versions = LocalModelRegistry(tmp_path / "reg").versions("qsar")
    assert [v.version for v in versions] == list(range(1, 31))
    assert len({v.model_sha256 for v in versions}) == 30


def test_promotion_makes_one_champion_and_archives_the_previous(tmp_path: Path) -> None:
    registry = LocalModelRegistry(tmp_path)
    _register(registry, _archive(tmp_path, "a"))
    _register(registry, _archive(tmp_path, "b"))
    assert registry.champion("qsar") is None
    registry.promote("qsar", 1, "first")
    registry.promote("qsar", 2, "better")
    assert registry.champion("qsar").version == 2
    assert [v.stage for v in registry.versions("qsar")] == ["archived", "champion"]
    history = registry.champion_history("qsar")
    assert [(h["version"], h["previous"], h["reason"]) for h in history] == [
        (1, None, "first"),
        (2, 1, "better"),
    ]
    assert json.loads((tmp_path / "qsar/champion.json").read_text())["version"] == 2


def _stages_on_disk(root: Path) -> list[str]:
    records = sorted((root / "qsar/versions").glob("*/version.json"), key=lambda p: p.parent.name)
    return [json.loads(path.read_text())["stage"] for path in records]


def test_the_champions_own_record_says_champion(tmp_path: Path) -> None:
    registry = LocalModelRegistry(tmp_path)
    _register(registry, _archive(tmp_path, "a"))
    _register(registry, _archive(tmp_path, "b"))
    registry.promote("qsar", 1, "first")
    assert _stages_on_disk(tmp_path) == ["champion", "candidate"]
    registry.promote("qsar", 2, "better")
    assert _stages_on_disk(tmp_path) == ["archived", "champion"]


def test_a_promotion_killed_after_its_commit_reads_whole_and_is_finished_by_recover(
    tmp_path: Path,
) -> None:
    registry = LocalModelRegistry(tmp_path)
    _register(registry, _archive(tmp_path, "a"))
    _register(registry, _archive(tmp_path, "b"))
    registry.promote("qsar", 1, "first")
    # Killed right after the commit point: champion.json names version 2, nothing else followed,
    # and a half-written record and a staging folder are left behind.
    entry = {"version": 2, "previous": 1, "promoted_at": "2026-01-01T00:00:00+00:00", "reason": "r"}
    (tmp_path / "qsar/champion.json").write_text(json.dumps(entry))
    (tmp_path / "qsar/versions/1/.version.json.dead").write_text("{")
    (tmp_path / "qsar/.staging-dead").mkdir()
    assert [v.stage for v in registry.versions("qsar")] == ["archived", "champion"]
    registry.recover("qsar")
    assert _stages_on_disk(tmp_path) == ["archived", "champion"]
    assert registry.champion_history("qsar")[-1] == entry
    assert len(registry.champion_history("qsar")) == 2
    assert sorted(p.name for p in (tmp_path / "qsar").iterdir() if p.name.startswith(".")) == [
        ".lock"
    ]
    assert not list((tmp_path / "qsar/versions/1").glob(".*"))


def test_unknown_version_and_bad_name_are_refused(tmp_path: Path) -> None:
    registry = LocalModelRegistry(tmp_path)
    _register(registry, _archive(tmp_path, "a"))
    with pytest.raises(RegistryError, match="has no version 7; versions: \\[1\\]"):
        registry.get("qsar", 7)
    with pytest.raises(InvalidSpecError, match="model_name"):
        registry.versions("bad name!")
