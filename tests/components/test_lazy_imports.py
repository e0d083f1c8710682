"""Importing Flywheel's internals never imports KFP: the CLI's fast start depends on it.

``flywheel.components`` loads a component (and with it KFP) only when one is asked for; the
internal modules the CLI and the steps import must not pull KFP in on their own.
"""

import subprocess
import sys

import pytest

INTERNAL_MODULES = [
    "flywheel.components",
    "flywheel.components.contract.workload",
    "flywheel.components.images",
    "flywheel.components.errors",
    "flywheel.pipelines.defaults",
]


def _imports_kfp(statement: str) -> bool:
    probe = f"{statement}\nimport sys\nprint('kfp' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return result.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize("module", INTERNAL_MODULES)
def test_importing_an_internal_module_does_not_import_kfp(module: str) -> None:
    assert not _imports_kfp(f"import {module}")


def test_asking_for_a_component_imports_kfp() -> None:
    # The probe itself works: a public component does bring KFP.
    assert _imports_kfp("from flywheel.components import train_model")
