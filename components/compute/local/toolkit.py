"""Run a training job under SageMaker's own training toolkit (``sagemaker-training``).

AWS's framework containers start every script-mode job with the toolkit's ``train`` command. It
reads ``input/config/*.json``, unpacks ``sagemaker_submit_directory`` into ``/opt/ml/code``,
installs a ``requirements.txt`` found there, sets every ``SM_*`` variable and runs the entry point
with the hyperparameters as ``--name value`` arguments. The local and EKS backends run that same
command over a layout rooted at ``SAGEMAKER_BASE_DIR``, so argv, environment, config files and
requirements match SageMaker by construction rather than by imitation.

The toolkit installs ``requirements.txt`` into the interpreter that runs it; here that interpreter
is Flywheel's own, so each job installs into a folder of its own instead (``PIP_TARGET``), which is
on the job's ``PYTHONPATH`` as a container's ``site-packages`` would be, and goes with the job.
"""

from __future__ import annotations

import functools
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath

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
# The toolkit's error when it could not install the code's dependencies, and what it was installing.
_INSTALL_ERRORS = {
    "InstallRequirementsError": "requirements.txt",
    "InstallModuleError": "the code folder as a package (setup.py)",
}
# A script's framework, missing from Flywheel's environment, and the extra that brings it.
FRAMEWORK_EXTRAS = {"xgboost": "xgboost", "torch": "gpu"}
_MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '([^'.]+)")
# Python reports a SyntaxError's place in the traceback's lines, not in the exception line itself.
_SYNTAX_ERRORS = ("SyntaxError", "IndentationError", "TabError")
_TRACEBACK_PLACE = re.compile(r'File "([^"]+)", line (\d+)')
_NAMED_PLACE = re.compile(r"\(\S+, line \d+\)$")


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
    """How the toolkit's process ended, and why when it failed.

    ``install`` names what the toolkit could not install before the script (``requirements.txt``),
    when that is why it failed: the script never started, and ``reason`` is pip's own error.
    """

    status: int
    reason: str
    install: str | None = None


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


def job_site(scratch: Path) -> Path:
    """The job's own folder of installed packages: ``requirements.txt`` goes there."""
    return scratch / "site"


def toolkit_environment(
    spec: TrainingJobSpec,
    base_dir: Path,
    *,
    bin_dir: Path,
    site: Path,
    processes_per_host: int,
) -> dict[str, str]:
    """What the toolkit's process needs besides the config files: where ``/opt/ml`` is, and where
    the job's packages install (``site``, first on ``PYTHONPATH``; the toolkit hands its
    ``sys.path`` on to the script)."""
    inherited = {**os.environ, **spec.environment}
    commands = [str(site / "bin")]
    environment = {
        "SAGEMAKER_BASE_DIR": str(base_dir),
        "TRAINING_JOB_NAME": spec.job_name,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        **spec.environment,
        "PIP_TARGET": str(site),
        "PYTHONPATH": os.pathsep.join(
            [str(site), *filter(None, [inherited.get("PYTHONPATH", "")])]
        ),
    }
    if processes_per_host > 1:
        environment["SAGEMAKER_TRAINING_MODULE"] = torchrun.MODULE
        environment[torchrun.PROCESSES_PER_HOST_ENV] = str(processes_per_host)
        commands.insert(0, str(bin_dir))
    environment["PATH"] = os.pathsep.join([*commands, inherited.get("PATH", "")])
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
    # pip's errors can run longer than the tail; they explain a failed install.
    pip_errors: list[str] = []

    def observe(line: str) -> None:
        if line.startswith("ERROR:") and line not in pip_errors:
            pip_errors.append(line)
        log(line)

    status, tail = stream_process(
        [*prefix, python, "-m", "sagemaker_training.cli.train"],
        cwd=scratch,
        environment=toolkit_environment(
            spec,
            base_dir,
            bin_dir=bin_dir,
            site=job_site(scratch),
            processes_per_host=processes_per_host,
        ),
        log=observe,
    )
    if status == 0:
        return ToolkitOutcome(0, "")
    written = contract.read_failure_reason(layout)
    error = failed_install(written)
    if error is not None:
        pip_message = " ".join(pip_errors) or failure_reason(None, tail)
        return ToolkitOutcome(status, f"{pip_message} ({error})", _INSTALL_ERRORS[error])
    return ToolkitOutcome(
        script_exit_status(tail) or status,
        with_extra_hint(failure_reason(written, tail)),
    )


def failed_install(written: str | None) -> str | None:
    """The toolkit's error for an install that failed before the script, from its failure file."""
    for error in _INSTALL_ERRORS:
        if written is not None and written.startswith(error):
            return error
    return None


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
    Any other reason (the script's own failure file) is kept whole.
    """
    if written is None or written.startswith("ExecuteUserScriptError"):
        output = [line for line in tail if not _is_toolkit_line(line)]
        return with_syntax_place(crash_reason(output), output)
    return written


def with_syntax_place(reason: str, output: list[str]) -> str:
    """A ``SyntaxError`` line with its file and line, as ``str()`` of the exception gives them.

    The traceback prints the place on a ``File "...", line N`` line above the exception line,
    which alone (``SyntaxError: invalid syntax``) names neither.
    """
    if not reason.startswith(_SYNTAX_ERRORS) or _NAMED_PLACE.search(reason):
        return reason
    places = [found for line in output if (found := _TRACEBACK_PLACE.search(line))]
    if not places:
        return reason
    return f"{reason} ({PurePath(places[-1][1]).name}, line {places[-1][2]})"


def with_extra_hint(reason: str) -> str:
    """A missing framework's failure, with one more line naming the extra that brings it."""
    missing = _MISSING_MODULE.search(reason)
    if missing is None or missing[1] not in FRAMEWORK_EXTRAS:
        return reason
    extra = FRAMEWORK_EXTRAS[missing[1]]
    return f"{reason}\n{missing[1]} is not installed: pip install 'flywheel-mlops[{extra}]'"


def _is_toolkit_line(line: str) -> bool:
    """The toolkit's own log lines and its multi-line error report, as opposed to the script's."""
    return TOOLKIT_LOGGER in line or line.startswith(_TOOLKIT_REPORT)
