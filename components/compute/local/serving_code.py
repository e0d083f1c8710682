"""Lay out the serving code where the framework's container looks for it, before serving starts.

The SageMaker SDK decides where a model's inference code goes. ``PyTorchModel`` (framework 1.2 and
later) always repacks it into the model, ``model.tar.gz:code/`` (``utils._create_or_update_code_dir``),
because the PyTorch toolkit imports only from ``/opt/ml/model/code`` and installs
``code/requirements.txt`` when it starts. The SDK puts each dependency under ``code/lib/<name>``,
which no container puts on ``sys.path``; Flywheel puts it beside the code, ``code/<name>``, on the
SageMaker backend and here alike, so ``import <name>`` works. The scikit-learn and XGBoost models keep the code in ``sourcedir.tar.gz``, whose root holds
the source folder's files and each dependency by name (``contract.packaging.code_with_dependencies``);
their containers unpack it into ``/opt/ml/code``, on ``sys.path``. The same layouts are made here.

``code/requirements.txt`` installs for the job only, as processing jobs' do: ``PIP_TARGET`` is a
folder of the job's own, put on the serving process's ``PYTHONPATH``, never Flywheel's environment.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from flywheel.components.compute.backend import LogSink
from flywheel.components.compute.local.process import crash_reason, stream_process
from flywheel.components.compute.local.serving import MODEL_CODE_DIR
from flywheel.components.contract.packaging import code_with_dependencies
from flywheel.components.errors import JobFailedError

REQUIREMENTS = "requirements.txt"
_IGNORED = shutil.ignore_patterns("__pycache__")


def repack_code(model_dir: Path, source_dir: Path, dependencies: tuple[Path, ...]) -> Path:
    """``model_dir/code`` as the SageMaker backend repacks it: the source folder, each dependency
    beside its files under its own name."""
    code_dir = model_dir / MODEL_CODE_DIR
    shutil.rmtree(code_dir, ignore_errors=True)
    shutil.copytree(source_dir, code_dir, ignore=_IGNORED)
    for dependency in dependencies:
        shutil.copytree(dependency, code_dir / dependency.name, ignore=_IGNORED)
    return code_dir


def submit_directory(
    framework: str | None, source_dir: Path, dependencies: tuple[Path, ...], scratch: Path
) -> Path:
    """The folder passed to serving as the submit directory; for PyTorch the code is in the model.

    For PyTorch the un-repacked folder is passed all the same, as ``SAGEMAKER_SUBMIT_DIRECTORY``
    still names it there: the toolkit ignores it, and so does local serving.
    """
    if framework == "pytorch":
        return source_dir
    return code_with_dependencies(source_dir, dependencies, scratch)


def job_python_path(site: Path, environment: Mapping[str, str]) -> str:
    """``PYTHONPATH`` for the serving process: the job's own packages first."""
    inherited = environment.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    return os.pathsep.join(filter(None, [str(site), inherited]))


def install_requirements(
    code_dir: Path, site: Path, *, python: str, job_name: str, log: LogSink
) -> None:
    """``pip install -r code_dir/requirements.txt`` into ``site``, if the file is there.

    A failure names pip's own error and says the serving code never started.
    """
    site.mkdir(parents=True, exist_ok=True)
    requirements = code_dir / REQUIREMENTS
    if not requirements.is_file():
        return
    log(f"[{job_name}] installing {MODEL_CODE_DIR}/{REQUIREMENTS} for this job only")
    status, tail = stream_process(
        [python, "-m", "pip", "install", "-r", str(requirements)],
        cwd=code_dir,
        environment={"PIP_TARGET": str(site), "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        log=log,
    )
    if status != 0:
        errors = [line for line in tail if line.startswith("ERROR:")]
        raise JobFailedError(
            job_name,
            f"installing {MODEL_CODE_DIR}/{REQUIREMENTS} failed, so the serving code never "
            f"started: {crash_reason(errors or tail)}",
        )
