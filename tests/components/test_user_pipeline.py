"""A pipeline a user composes from ``flywheel.components`` alone compiles and runs on kfp.local.

The pipeline lives in one file (``USER_PIPELINE``) that imports only public names, so it can move
to ``examples/`` and stay tested from here.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from kfp import compiler, local

from flywheel import components
from flywheel.components.registry import LocalModelRegistry
from flywheel.pipelines.defaults import DEFAULT_SOURCE, DEFAULT_WORKLOAD

USER_PIPELINE = Path(__file__).parent / "user_pipeline.py"
# Small and quick: the QSAR example's forest, shrunk.
FAST = {"n_estimators": "25", "n_bits": "1024"}


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def user_pipeline():
    return _load(USER_PIPELINE).always_promote


def test_the_user_pipeline_imports_only_public_names() -> None:
    tree = ast.parse(USER_PIPELINE.read_text())
    flywheel_imports = [
        (node.module, [alias.name for alias in node.names])
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("flywheel")
    ]
    plain_imports = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.startswith("flywheel")
    ]
    assert plain_imports == []
    assert [module for module, _ in flywheel_imports] == ["flywheel.components"]
    (names,) = [names for _, names in flywheel_imports]
    assert set(names) <= set(components.__all__)


def test_the_user_pipeline_defaults_run_the_qsar_example(user_pipeline) -> None:
    inputs = user_pipeline.component_spec.inputs
    assert inputs["workload"].default == DEFAULT_WORKLOAD
    assert inputs["source"].default == DEFAULT_SOURCE


def test_the_user_pipeline_compiles_without_a_gate(user_pipeline, tmp_path: Path) -> None:
    target = tmp_path / "always_promote.yaml"
    compiler.Compiler().compile(user_pipeline, str(target))
    ir = yaml.safe_load(target.read_text())
    assert set(ir["root"]["dag"]["tasks"]) == {
        "prepare-data",
        "train-model",
        "evaluate-model",
        "score-champion",
        "register-model",
        "promote-model",
    }
    assert ir["root"]["outputDefinitions"]["parameters"]["Output"]["parameterType"] == (
        "NUMBER_INTEGER"
    )


@pytest.mark.e2e
def test_the_user_pipeline_runs_on_kfp_local_and_makes_a_champion(
    user_pipeline, tmp_path: Path
) -> None:
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "runs"),
        enable_caching=False,
        raise_on_error=True,
    )
    registry = tmp_path / "registry"
    run = user_pipeline(registry=str(registry), hyperparameters=FAST)
    assert run.output == 1
    (version,) = LocalModelRegistry(registry).versions("qsar-pic50")
    assert version.version == 1 and version.stage == "champion"
    assert {"rmse", "mae", "r2"} <= set(version.metrics)
    assert version.lineage["data"]["training_batches"] == 1
