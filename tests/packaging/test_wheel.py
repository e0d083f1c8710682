"""The installed package, as a user gets it: one import name, runnable from any folder.

The wheel is built from this checkout and installed into a fresh virtual environment that borrows
only the third-party packages of the development venv (a path entry, so the editable install of
the checkout is not active there). Every test then runs from a folder outside the checkout that
holds decoy ``components/`` and ``pipelines/`` packages: a user's own folders of those names.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DECOY = "raise ImportError(\"the user's own {name}/ was imported instead of flywheel's\")\n"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "--wheel-dir",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("flywheel_mlops-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; returns its bin folder."""
    home = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(home)
    site = next(home.glob("lib/python*/site-packages"))
    # Every site-packages folder this interpreter sees (a venv may chain to another one).
    borrowed = [path for path in sys.path if path.endswith("site-packages")]
    (site / "borrowed.pth").write_text("\n".join(borrowed) + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(home / "bin" / "python"),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    return home / "bin"


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    """Where a user runs commands: their own components/ and pipelines/ packages beside them."""
    folder = tmp_path / "my-project"
    for name in ("components", "pipelines", "operators"):
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(DECOY.format(name=name))
    return folder


def _run(command: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL")}
    environment["PYTHONPATH"] = ""  # a user's shell has no checkout on its path
    return subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
    )


def test_wheel_has_one_top_level_import_name(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        top_level = {name.split("/")[0] for name in archive.namelist()}
        names = archive.namelist()
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"flywheel"}
    assert "flywheel/examples/qsar/workload.yaml" in names
    assert "flywheel/examples/qsar/train.py" in names
    assert "flywheel/pipelines/compiled/training.yaml" in names


def test_installed_cli_trains_the_packaged_example_from_any_folder(
    installed: Path, user_folder: Path
) -> None:
    result = _run([str(installed / "flywheel"), "run", "training"], cwd=user_folder)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "qsar-pic50 version 1" in result.stdout
    assert (user_folder / ".flywheel" / "registry" / "qsar-pic50" / "champion.json").is_file()


def test_user_folders_named_like_ours_do_not_shadow_flywheel(
    installed: Path, user_folder: Path
) -> None:
    probe = (
        "import flywheel.components.contract.workload, flywheel.pipelines.cli, flywheel.operators.decision\n"
        "import sys; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('components', 'pipelines', 'operators')))"
    )
    result = _run([str(installed / "python"), "-c", probe], cwd=user_folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    result = _run(
        [str(installed / "python"), "-m", "flywheel.operators", "--help"], cwd=user_folder
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_home_folder_follows_flywheel_home(installed: Path, user_folder: Path) -> None:
    environment_home = user_folder / "elsewhere"
    result = subprocess.run(
        [str(installed / "flywheel"), "report"],
        cwd=user_folder,
        env={**os.environ, "PYTHONPATH": "", "FLYWHEEL_HOME": str(environment_home)},
        capture_output=True,
        text=True,
    )
    # No history yet: the error names the folder FLYWHEEL_HOME chose, not ./.flywheel.
    assert result.returncode != 0
    assert str(environment_home / "history") in result.stderr
