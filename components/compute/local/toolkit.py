"""Run a training job under SageMaker's own training toolkit (``sagemaker-training``).

AWS's framework containers start every script-mode job with the toolkit's ``train`` command. It
reads ``input/config/*.json``, unpacks ``sagemaker_submit_directory`` into ``/opt/ml/code``,
installs a ``requirements.txt`` found there, sets every ``SM_*`` variable and runs the entry point
with the hyperparameters as ``--name value`` arguments. The local and EKS backends run that same
command over a layout rooted at ``SAGEMAKER_BASE_DIR``, so argv, environment, config files and
requirements match SageMaker by construction rather than by imitation.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flywheel.components.compute.backend import LogSink, TrainingJobSpec
from flywheel.components.compute.local import torchrun
from flywheel.components.compute.local.opt_ml import opt_ml_prefix
from flywheel.components.compute.local.process import crash_reason, stream_process
from flywheel.components.contract import training as contract
from flywheel.components.contract.packaging import pack_source

TOOLKIT_LOGGER = "sagemaker-training-toolkit"
# The lines of the toolkit's ``ExecuteUserScriptError`` report, logged after the script's output.
_TOOLKIT_REPORT = ("ExecuteUserScriptError", "ExitCode ", "ErrorMessage ", "Command ")
# The SDK's hyperparameter for ``distribution={"torch_distributed": {"enabled": True}}``.
TORCH_DISTRIBUTED_PARAM = "sagemaker_torch_distributed_enabled"


@functools.cache
def current_host() -> str:
    """This machine's name, as ``resourceconfig.json`` gives it; the toolkit waits until it resolves.

    SageMaker's ``algo-1`` resolves only inside a SageMaker cluster; here the toolkit would wait for
    it for 15 minutes, so the host is this machine (or ``localhost`` where its name does not resolve).
    """
    name = socket.gethostname()
    try:
        socket.gethostbyname(name)
    except OSError:
        return "localhost"
    return name


@dataclass(frozen=True)
class ToolkitOutcome:
    """How the toolkit's process ended, and why when it failed."""

    status: int
    reason: str


def stage_job(
    spec: TrainingJobSpec,
    layout: contract.ContractLayout,
    *,
    scratch: Path,
    content_types: Mapping[str, str],
    processes_per_host: int,
) -> None:
    """Pack the code as ``sourcedir.tar.gz`` and write the config files, as SageMaker does.

    Channels must already be laid out under ``input/data``; ``content_types`` names each one.
    """
    archive = pack_source(Path(spec.source_dir), scratch)
    hyperparameters = contract.sdk_hyperparameters(
        spec.hyperparameters,
        entry_point=spec.entry_point,
        submit_directory=str(archive),
        job_name=spec.job_name,
    )
    if processes_per_host > 1:
        hyperparameters[TORCH_DISTRIBUTED_PARAM] = "true"
    contract.write_config_files(
        layout,
        hyperparameters=hyperparameters,
        resources=contract.resource_config(current_host()),
        channels=contract.input_data_config(content_types),
    )


def toolkit_environment(
    spec: TrainingJobSpec, base_dir: Path, *, bin_dir: Path, processes_per_host: int
) -> dict[str, str]:
    """What the toolkit's process needs besides the config files: where ``/opt/ml`` is."""
    environment = {
        "SAGEMAKER_BASE_DIR": str(base_dir),
        "TRAINING_JOB_NAME": spec.job_name,
        **spec.environment,
    }
    if processes_per_host > 1:
        environment["SAGEMAKER_TRAINING_MODULE"] = torchrun.MODULE
        environment[torchrun.PROCESSES_PER_HOST_ENV] = str(processes_per_host)
        environment["PATH"] = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])
    return environment


def write_torchrun_command(bin_dir: Path, python: str) -> None:
    """A ``torchrun`` on ``PATH`` for the toolkit's runner, run by the interpreter that has torch.

    A virtual environment need not hold a ``torchrun`` script of its own (one sharing another's
    packages has none), but ``python -m torch.distributed.run`` is torchrun wherever torch is.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    command = bin_dir / "torchrun"
    command.write_text(f'#!/bin/sh\nexec "{python}" -m torch.distributed.run "$@"\n')
    command.chmod(0o755)


def run_toolkit(
    spec: TrainingJobSpec,
    layout: contract.ContractLayout,
    *,
    scratch: Path,
    python: str,
    processes_per_host: int,
    log: LogSink,
) -> ToolkitOutcome:
    """Run the toolkit's ``train`` over ``layout``; the reason is the failure file's, when it failed.

    ``scratch`` is the job's private folder for what is not part of the layout.
    """
    prefix = opt_ml_prefix(layout.root, scratch / "opt-view")
    # Under the private mount the job sees the very paths it would see on SageMaker.
    base_dir = contract.ML_ROOT if prefix else layout.root
    if base_dir != contract.ML_ROOT:
        log(f"[{spec.job_name}] /opt/ml is {layout.root} here (SAGEMAKER_BASE_DIR, SM_* variables)")
    bin_dir = scratch / "bin"
    if processes_per_host > 1:
        write_torchrun_command(bin_dir, python)
    status, tail = stream_process(
        [*prefix, python, "-m", "sagemaker_training.cli.train"],
        cwd=scratch,
        environment=toolkit_environment(
            spec, base_dir, bin_dir=bin_dir, processes_per_host=processes_per_host
        ),
        log=log,
    )
    if status == 0:
        return ToolkitOutcome(0, "")
    return ToolkitOutcome(
        script_exit_status(tail) or status,
        failure_reason(contract.read_failure_reason(layout), tail),
    )


def script_exit_status(tail: list[str]) -> int | None:
    """The script's own exit status, from the toolkit's report (the toolkit itself exits with 1)."""
    for line in reversed(tail):
        if line.startswith("ExitCode ") and line.split()[1].lstrip("-").isdigit():
            return int(line.split()[1])
    return None


def failure_reason(written: str | None, tail: list[str]) -> str:
    """The failure file's reason, or the script's last line when the file says nothing more.

    The toolkit writes ``ExecuteUserScriptError: ExitCode 1 ...`` only when the script left no
    failure file; it names the command, not the cause, which the script's last output line names.
    Any other reason the toolkit writes (a failed ``requirements.txt`` install) is kept whole.
    """
    if written is None or written.startswith("ExecuteUserScriptError"):
        return crash_reason([line for line in tail if not _is_toolkit_line(line)])
    return written


def _is_toolkit_line(line: str) -> bool:
    """The toolkit's own log lines and its multi-line error report, as opposed to the script's."""
    return TOOLKIT_LOGGER in line or line.startswith(_TOOLKIT_REPORT)
