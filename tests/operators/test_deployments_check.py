"""``flywheel deployments check``: a ModelDeployment is refused in one line naming the file and
the field before git or the cluster takes it, pinned versions judged against the registry (the
dev world's ``sagemaker://`` registry on moto, every request through the strict validator)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from moto.moto_api._internal.models import moto_api_backend

from flywheel.operators.__main__ import _dev_world
from flywheel.pipelines.cli import main

SAMPLE = Path(__file__).resolve().parents[2] / "manifests/deployments/modeldeployment-sample.yaml"


@pytest.fixture
def dev_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """churn-model versions 1 and 2 registered, pending approval, on a fresh moto."""
    moto_api_backend.reset()
    with _dev_world(tmp_path) as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield
    moto_api_backend.reset()


def _sample(tmp_path: Path, change: dict | None = None) -> Path:
    resource = yaml.safe_load(SAMPLE.read_text())
    resource["spec"]["stages"][1].update(change or {})
    path = tmp_path / "deployment.yaml"
    path.write_text(yaml.safe_dump(resource))
    return path


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    return error


@pytest.mark.usefixtures("dev_registry")
def test_the_sample_passes_and_a_pinned_version_the_registry_lacks_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Version 1 exists but waits for approval: the operator would wait for it too, so it passes.
    assert main(["deployments", "check", str(SAMPLE)]) == 0
    assert "churn-model can be deployed (staging=newest Approved, prod=1)" in (
        capsys.readouterr().out
    )
    missing = _sample(tmp_path, {"version": 9})
    assert main(["deployments", "check", str(missing)]) == 2
    assert _one_line_error(capsys) == (
        f"flywheel: error: {missing}#0 (churn-model): spec.stages[1].version: churn-model has "
        "no version 9 (versions: 1, 2)"
    )


def test_a_spec_the_operator_would_refuse_is_refused_before_any_registry_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: no call made
    unknown = _sample(tmp_path, {"promoteFrom": "qa"})
    assert main(["deployments", "check", str(unknown)]) == 2
    error = _one_line_error(capsys)
    assert error.startswith(
        f"flywheel: error: {unknown}#0 (churn-model): spec.stages[1].promoteFrom:"
    )
    assert "'qa' is not a stage listed before 'prod'" in error
    other = tmp_path / "policy.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    assert main(["deployments", "check", str(other)]) == 2
    assert _one_line_error(capsys) == (
        f"flywheel: error: {other}: holds no flywheel.dev/v1alpha1 ModelDeployment"
    )
