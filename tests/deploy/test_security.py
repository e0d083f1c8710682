"""Security checks: checkov over the rendered chart and overlays, parliament over IAM policies.

Both tools live in a separate virtual environment (``.venv/security-tools``): checkov pins boto3
below what the project needs, and parliament needs ``pkg_resources`` from an older setuptools.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_checks import MANIFESTS, ROOT, binary, run

TOOLS = ROOT / ".venv" / "security-tools" / "bin"
CHART_VALUES = {
    "defaults": [],
    "api-mode": ["--set", "pipelines.mode=api"],
    "prod": ["-f", str(MANIFESTS / "argocd" / "values" / "prod.yaml")],
}


def _tool(name: str) -> str:
    local = TOOLS / name
    found = str(local) if local.is_file() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed: see the security-tools target in the Makefile")
    return found


def _checkov_failures(manifest: Path) -> list[str]:
    result = run(
        _tool("checkov"),
        "--file",
        str(manifest),
        "--framework",
        "kubernetes",
        "--output",
        "json",
        "--quiet",
        "--compact",
        "--skip-download",  # offline: no guidelines
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    reports = report if isinstance(report, list) else [report]
    return [
        f"{check['check_id']} {check['resource']}: {check['check_name']}"
        for entry in reports
        for check in entry.get("results", {}).get("failed_checks", [])
    ]


@pytest.mark.parametrize("args", CHART_VALUES.values(), ids=CHART_VALUES.keys())
def test_rendered_chart_passes_checkov(tmp_path: Path, args: list[str]) -> None:
    rendered = run(
        binary("helm"),
        "template",
        "flywheel",
        str(ROOT / "helm" / "flywheel"),
        "-n",
        "flywheel",
        *args,
    )
    assert rendered.returncode == 0, rendered.stderr
    manifest = tmp_path / "chart.yaml"
    manifest.write_text(rendered.stdout)
    assert _checkov_failures(manifest) == []


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_kustomize_overlay_passes_checkov(tmp_path: Path, overlay: str) -> None:
    rendered = run(binary("kubectl"), "kustomize", str(MANIFESTS / "overlays" / overlay))
    assert rendered.returncode == 0, rendered.stderr
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(rendered.stdout)
    assert _checkov_failures(manifest) == []


IAM_POLICIES = sorted((MANIFESTS / "iam").glob("*.json"))


@pytest.mark.skipif(not IAM_POLICIES, reason="no IAM policy files in manifests/iam/ yet")
@pytest.mark.parametrize("policy", IAM_POLICIES, ids=[path.name for path in IAM_POLICIES])
def test_iam_policy_passes_parliament(policy: Path) -> None:
    # parliament reads the policy from stdin; with --file it refuses a non-terminal stdin.
    result = subprocess.run(
        [_tool("parliament"), "--json"], input=policy.read_text(), capture_output=True, text=True
    )
    findings = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 0 or findings, result.stderr
    assert findings == []
