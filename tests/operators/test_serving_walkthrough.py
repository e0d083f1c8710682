"""The README's serving walkthrough, as a user runs it: ``python -m flywheel.operators --dev`` in
one process, and in another the real kubectl and ``flywheel approve`` with the exports it prints.
Registered model → approval → staging → soak → prod's approval → prod, on the dev emulator. The
sample soaks 2 minutes; the test steps the operator's clock past them (``clock.OFFSET_FILE_ENV``)
instead of waiting."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flywheel.operators.clock import OFFSET_FILE_ENV

from .operator_harness import wait_for

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = ROOT / ".venv" / "bin" / "kubectl"
SAMPLE = ROOT / "manifests" / "deployments" / "modeldeployment-sample.yaml"
# ``export A=1 B=2 \`` and its continuation lines: every NAME=value the help says to export.
EXPORTED = re.compile(r"\b([A-Z][A-Z0-9_]+)=('[^']*'|\S+)")

pytestmark = pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl is not in .venv/bin")


@pytest.fixture
def dev_operator(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """The dev operator's process; the environment its help says to export, and its clock file."""
    offset = tmp_path / "clock-offset"
    offset.write_text("0")
    environment = {**os.environ, OFFSET_FILE_ENV: str(offset)}
    process = subprocess.Popen(
        [sys.executable, "-m", "flywheel.operators", "--dev"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
        cwd=tmp_path,
    )
    exports: dict[str, str] = {}
    try:
        assert process.stdout is not None
        started = time.monotonic()
        continued = False
        for line in process.stdout:
            if line.strip().startswith("export") or continued:
                exports.update((k, v.strip("'")) for k, v in EXPORTED.findall(line))
            continued = line.rstrip().endswith("\\")
            if "Press Ctrl+C to stop." in line or time.monotonic() - started > 60:
                break
        assert "FLYWHEEL_DEV_REGISTRY" in exports, "the dev help printed no exports"
        yield {**os.environ, **exports}, offset
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _run(command: list[str], environment: dict[str, str]) -> str:
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _stages(environment: dict[str, str]) -> dict[str, dict[str, Any]]:
    shown = _run([str(KUBECTL), "get", "md", "churn-model", "-o", "json"], environment)
    stages = json.loads(shown).get("status", {}).get("stages", [])
    return {stage["name"]: stage for stage in stages}


def _state(environment: dict[str, str], stage: str) -> tuple[str | None, Any]:
    found = _stages(environment).get(stage, {})
    return found.get("state"), found.get("servedVersion")


def test_the_readme_walkthrough_takes_version_1_through_staging_to_prod(
    dev_operator: tuple[dict[str, str], Path],
) -> None:
    environment, offset = dev_operator
    _run([str(KUBECTL), "apply", "-f", str(SAMPLE)], environment)
    wait_for(
        lambda: _stages(environment).get("staging", {}).get("reason") == "NoApprovedVersion",
        timeout=60,
        what="staging waiting for an Approved version",
    )
    registry = environment["FLYWHEEL_DEV_REGISTRY"]
    approve = ["approve", "churn-model", "1", "--note", "looks good", "--registry", registry]
    _run([sys.executable, "-m", "flywheel.pipelines.cli", *approve], environment)
    wait_for(
        lambda: _state(environment, "staging") == ("Deployed", 1),
        timeout=90,
        what="staging serving version 1",
    )
    assert _state(environment, "prod")[0] != "Deployed"  # soaking in staging first
    offset.write_text("180")  # past the sample's 2 minutes of soak
    wait_for(
        lambda: _state(environment, "prod")[0] == "AwaitingApproval",
        timeout=60,
        what="prod waiting for its own approval after the soak",
    )
    _run(
        [
            str(KUBECTL),
            "annotate",
            "md",
            "churn-model",
            "flywheel.dev/approve.prod=1",
            "--overwrite",
        ],
        environment,
    )
    wait_for(
        lambda: _state(environment, "prod") == ("Deployed", 1),
        timeout=90,
        what="prod serving version 1",
    )
    shown = _run([str(KUBECTL), "get", "md", "churn-model"], environment)
    assert "staging=1 (Deployed)" in shown and "prod=1 (Deployed)" in shown
