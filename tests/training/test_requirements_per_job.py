"""``requirements.txt`` installs for the job only, as in a container, never into Flywheel's
environment; a failed install says so in pip's words, not as the script's failure."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from flywheel.components.compute.backend import TrainingJobSpec
from flywheel.components.compute.local import LocalBackend
from flywheel.components.errors import JobFailedError

PROBE = "flywheel_job_probe"

SCRIPT = f"""
import os, pathlib
import {PROBE}
print("probe from", {PROBE}.__file__)
pathlib.Path(os.environ["SM_MODEL_DIR"], "model.txt").write_text({PROBE}.VALUE)
"""


def build_wheel(folder: Path) -> Path:
    """A one-module wheel, built by hand: pip installs it from the file, with no index."""
    files = {
        f"{PROBE}/__init__.py": b'VALUE = "installed for this job"\n',
        f"{PROBE}-1.0.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {PROBE}\nVersion: 1.0\n".encode()
        ),
        f"{PROBE}-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b'=').decode()},{len(body)}"
        for name, body in files.items()
    ]
    record.append(f"{PROBE}-1.0.dist-info/RECORD,,")
    files[f"{PROBE}-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"{PROBE}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, body in files.items():
            archive.writestr(name, body)
    return wheel


@pytest.fixture
def job(one_script_job: Callable[..., TrainingJobSpec]) -> Callable[[str], TrainingJobSpec]:
    """``job(requirements)``: the probe script's training job with that ``requirements.txt``."""
    return lambda requirements: one_script_job(
        SCRIPT, job_name="requirements-job", files={"requirements.txt": requirements}
    )


def importable_in_flywheels_environment(module: str) -> bool:
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import importlib.util; print(importlib.util.find_spec({module!r}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return found.stdout.strip() != "None"


def test_a_requirement_installs_for_the_job_and_not_into_flywheels_environment(
    job,
    tmp_path: Path,
) -> None:
    assert not importable_in_flywheels_environment(PROBE), f"{PROBE} is installed already"
    wheel = build_wheel(tmp_path)
    lines: list[str] = []
    LocalBackend().train(job(f"--no-index\n{wheel}\n"), log=lines.append)
    (place,) = [line for line in lines if line.startswith("probe from ")]
    assert Path(sys.prefix) not in Path(place.removeprefix("probe from ")).parents
    assert not importable_in_flywheels_environment(PROBE)


def test_an_impossible_requirement_fails_naming_pips_error_and_that_the_script_never_ran(
    job,
    tmp_path: Path,
) -> None:
    spec = job("--no-index\nflywheel-no-such-distribution==1.0\n")
    with pytest.raises(JobFailedError) as failed:
        LocalBackend().train(spec, log=lambda _: None)
    reason = str(failed.value)
    assert "installing requirements.txt failed, so train.py never started" in reason
    assert "No matching distribution found for flywheel-no-such-distribution==1.0" in reason
    assert "exited with status" not in reason and "ErrorMessage" not in reason
