"""The real kubectl against the dev emulator: apply, get with printer columns, explain, dry run."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from flywheel.operators.emulator import EmulatorThread, write_kubeconfig

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = ROOT / ".venv" / "bin" / "kubectl"
SAMPLE = ROOT / "manifests" / "policies" / "retrainpolicy-sample.yaml"

pytestmark = pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl is not in .venv/bin")


@pytest.fixture
def kubectl(tmp_path: Path) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    with EmulatorThread("default") as emulator:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", emulator.url)

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(KUBECTL), *args],
                env={**os.environ, "KUBECONFIG": str(kubeconfig)},
                capture_output=True,
                text=True,
                timeout=60,
            )

        yield run


def test_kubectl_apply_validates_against_the_served_openapi(kubectl: Callable[..., Any]) -> None:
    applied = kubectl("apply", "-f", str(SAMPLE))
    assert applied.returncode == 0, applied.stderr
    assert "retrainpolicy.flywheel.dev/churn-model created" in applied.stdout


def test_a_server_side_dry_run_stores_nothing(kubectl: Callable[..., Any]) -> None:
    dry = kubectl("apply", "--dry-run=server", "-f", str(SAMPLE))
    assert dry.returncode == 0, dry.stderr
    assert "(server dry run)" in dry.stdout
    listed = kubectl("get", "rp", "-o", "name")
    assert listed.stdout.strip() == ""


def test_kubectl_get_prints_the_crd_printer_columns(kubectl: Callable[..., Any]) -> None:
    kubectl("apply", "-f", str(SAMPLE))
    table = kubectl("get", "rp")
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == [
        "NAME", "READY", "SUSPENDED", "ACTIVE", "LAST", "TRIGGER", "LAST", "SUCCESS", "NEXT", "AGE"
    ]  # fmt: skip
    assert row.split()[0] == "churn-model" and row.split()[-1].endswith("s")
    assert "short name" not in table.stderr


def test_kubectl_explain_reads_the_crd_schema(kubectl: Callable[..., Any]) -> None:
    explained = kubectl("explain", "rp.spec.concurrencyPolicy")
    assert explained.returncode == 0, explained.stderr
    assert "FIELD: concurrencyPolicy <string>" in explained.stdout
    assert "Replace" in explained.stdout


def test_openapi_v2_carries_the_crd_schema_too() -> None:
    with EmulatorThread("default") as emulator:
        response = urllib.request.urlopen(f"{emulator.url}/openapi/v2", timeout=10)
        document = json.load(response)
        response.close()
    policy = document["definitions"]["dev.flywheel.v1alpha1.RetrainPolicy"]
    assert policy["x-kubernetes-group-version-kind"] == [
        {"group": "flywheel.dev", "version": "v1alpha1", "kind": "RetrainPolicy"}
    ]
    assert policy["properties"]["metadata"]["$ref"].startswith("#/definitions/")
    assert "concurrencyPolicy" in policy["properties"]["spec"]["properties"]


def test_kubectl_apply_refuses_a_field_the_crd_does_not_declare(
    kubectl: Callable[..., Any], tmp_path: Path
) -> None:
    policy = yaml.safe_load(SAMPLE.read_text())
    policy["spec"]["triggers"][1]["metric"]["hysteresis"] = {"band": 0.1}
    manifest = tmp_path / "policy.yaml"
    manifest.write_text(yaml.safe_dump(policy))
    refused = kubectl("apply", "-f", str(manifest))
    assert refused.returncode != 0
    assert 'unknown field "spec.triggers[1].metric.hysteresis"' in refused.stderr
    assert kubectl("get", "rp", "-o", "name").stdout.strip() == ""
