"""Local processing: SageMaker Processing's container contract on this machine, one process a host.

Processing scripts hard-code ``/opt/ml/processing/...`` (there is no ``SM_*`` variable to honour),
so each host of the job gets a private job root shown to it at ``/opt/ml`` (``opt_ml.py``'s mount
namespace), laid out as SageMaker lays out a container before its entrypoint starts: the inputs
(each host's own share when ``ShardedByS3Key``), the SDK's ``code`` and ``entrypoint`` inputs, the
two config files, empty output folders and ``/opt/ml/output``. Hosts ``algo-1..N`` run side by side
(``hosts.py``). Where no private mount is possible (a pod that forbids user namespaces), a single
host may use the pod's own empty ``/opt/ml`` volume, as local training does; anything else is
refused in one line.

``requirements.txt`` installs for the job only: ``python``/``python3``/``pip`` on the job's
``PATH`` are shims for Flywheel's interpreter with ``PIP_TARGET`` set to a folder of the host's
own, which is on its ``PYTHONPATH``; ``pip uninstall`` (runproc.sh's ``typing``) is skipped, since
it would reach Flywheel's environment.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from flywheel.components.compute.backend import LogSink
from flywheel.components.compute.local.hosts import HostCommand, HostOutcome, run_hosts
from flywheel.components.compute.local.opt_ml import opt_ml_prefix, private_mounts_available
from flywheel.components.compute.local.process import crash_reason
from flywheel.components.compute.local.training import (
    check_source,
    claim_ml_root,
    download_channel,
    empty_folder,
)
from flywheel.components.contract import processing as contract
from flywheel.components.contract.packaging import pack_source
from flywheel.components.contract.training import ML_ROOT
from flywheel.components.errors import InvalidSpecError, JobFailedError

# Where outputs without a destination go: ``<output_root>/<job>/<output name>``.
DEFAULT_OUTPUT_ROOT = Path(tempfile.gettempdir()) / "flywheel-processing"
LOCAL_IMAGE = "flywheel-local"
LOCAL_INSTANCE_TYPE = "local"
# Made by the ``python`` shim when ``python -m pip`` fails: the install failed, not the script.
PIP_FAILED = "pip-failed"
# The working folder of the entrypoint: an image without WORKDIR starts there.
CONTAINER_CWD = Path("/")

_PYTHON_SHIM = """#!/bin/sh
# The job's python is Flywheel's interpreter; a failing `python -m pip` marks the install's failure.
if [ "$1" = -m ] && [ "$2" = pip ]; then
  "{python}" "$@" && exit 0
  status=$?
  : > "{marker}"
  exit $status
fi
exec "{python}" "$@"
"""
_PIP_SHIM = """#!/bin/sh
# Installs go to the job's PIP_TARGET; an uninstall would reach Flywheel's own environment.
if [ "$1" = uninstall ]; then
  echo "flywheel: skipped 'pip $*': this job's packages are its own, there is nothing to remove"
  exit 0
fi
exec "{bin}/python" -m pip "$@"
"""


@dataclass(frozen=True)
class StagedInput:
    """One input's files, fetched once for the job: a folder and its files' relative paths."""

    item: contract.ProcessingInput
    root: Path
    keys: tuple[str, ...]
    uri: str

    def keys_for(self, host_index: int, instance_count: int) -> list[str]:
        if self.item.distribution == "ShardedByS3Key":
            return contract.shard(self.keys, host_index, instance_count)
        return list(self.keys)


@dataclass(frozen=True)
class Host:
    """One host of the job: its name, its job root (``/opt/ml`` to it) and its private folder."""

    name: str
    index: int
    ml_root: Path
    folder: Path

    def local(self, path: PurePosixPath) -> Path:
        """Where ``/opt/ml/...`` of this host is on this machine."""
        return self.ml_root / path.relative_to(ML_ROOT)

    @property
    def bin_dir(self) -> Path:
        return self.folder / "bin"

    @property
    def site(self) -> Path:
        return self.folder / "site"


def _files_under(folder: Path) -> tuple[str, ...]:
    return tuple(sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()))


def stage_inputs(spec: contract.ProcessingJobSpec, scratch: Path) -> list[StagedInput]:
    """Find each input's files: an S3 prefix is downloaded once; local files are used in place."""
    staged = []
    for index, item in enumerate(spec.inputs):
        field_name = f"processing.inputs[{index}].source"
        source = Path(item.source)
        if item.source.startswith("s3://"):
            root = scratch / "inputs" / item.name
            try:
                download_channel(item.source, root)
            except InvalidSpecError as error:
                raise InvalidSpecError(field_name, error.problem) from None
            staged.append(StagedInput(item, root, _files_under(root), item.source))
        elif source.is_dir():
            staged.append(
                StagedInput(item, source, _files_under(source), source.resolve().as_uri())
            )
        elif source.is_file():
            staged.append(
                StagedInput(item, source.parent, (source.name,), source.resolve().as_uri())
            )
        else:
            raise InvalidSpecError(field_name, f"{item.source} does not exist")
    return staged


def write_job_commands(host: Host, python: str) -> None:
    """``python``, ``python3`` and ``pip`` for the job's ``PATH``, all Flywheel's interpreter."""
    host.bin_dir.mkdir(parents=True, exist_ok=True)
    shims = {
        "python": _PYTHON_SHIM.format(python=python, marker=host.folder / PIP_FAILED),
        "pip": _PIP_SHIM.format(bin=host.bin_dir),
    }
    for name, text in shims.items():
        (host.bin_dir / name).write_text(text)
        (host.bin_dir / name).chmod(0o755)
    (host.bin_dir / "python3").symlink_to("python")
    (host.bin_dir / "pip3").symlink_to("pip")


def host_environment(spec: contract.ProcessingJobSpec, host: Host) -> dict[str, str]:
    """The job's ``Environment``, plus what keeps its installs private and its output live."""
    inherited = {**os.environ, **spec.environment}
    python_path = [str(host.site), *filter(None, [inherited.get("PYTHONPATH", "")])]
    return {
        "PYTHONUNBUFFERED": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        # Inside the mount namespace the job is root of its own user namespace.
        "PIP_ROOT_USER_ACTION": "ignore",
        **spec.environment,
        "PATH": ":".join([str(host.bin_dir), inherited.get("PATH", "/usr/bin:/bin")]),
        "PIP_TARGET": str(host.site),
        "PYTHONPATH": ":".join(python_path),
    }


def lay_out_host(
    spec: contract.ProcessingJobSpec,
    host: Host,
    *,
    inputs: list[StagedInput],
    code: Mapping[str, Path],
    job_config: Mapping[str, object],
    python: str,
) -> None:
    """Make ``host.ml_root`` what SageMaker makes ``/opt/ml`` before the entrypoint starts."""
    for staged in inputs:
        target = host.local(staged.item.path)
        target.mkdir(parents=True, exist_ok=True)
        for key in staged.keys_for(host.index, spec.instance_count):
            (target / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(staged.root / key, target / key)
    for name, file in code.items():
        folder = host.local(contract.PROCESSING_ROOT / "input" / name)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, folder / file.name)
    for output in spec.outputs:
        host.local(output.path).mkdir(parents=True, exist_ok=True)
    host.local(contract.EXIT_MESSAGE_FILE).parent.mkdir(parents=True, exist_ok=True)
    contract.write_config_files(
        host.local(contract.CONFIG_DIR),
        job_config=job_config,
        host=host.name,
        instance_count=spec.instance_count,
    )
    write_job_commands(host, python)


def failure_reason(host: Host, outcome: HostOutcome) -> str:
    """Why a host failed: the install's own error, the script's exit message, or its last line."""
    if (host.folder / PIP_FAILED).exists():
        errors = [line for line in outcome.tail if line.startswith("ERROR:")]
        return f"installing requirements.txt failed: {crash_reason(errors or outcome.tail)}"
    message = host.local(contract.EXIT_MESSAGE_FILE)
    if message.is_file():
        text = message.read_text(errors="replace")[: contract.EXIT_MESSAGE_LIMIT].strip()
        if text:
            return text
    return crash_reason(outcome.tail)


def _written(folder: Path) -> list[Path]:
    # SageMaker does not follow symbolic links when it uploads an output.
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def deliver(folder: Path, destination: str) -> None:
    """Every file under ``folder`` to ``destination`` (a folder or an S3 prefix), by relative path.

    Files of several hosts at the same relative path: the later host's wins, as on S3.
    """
    files = _written(folder)
    if destination.startswith("s3://"):
        import boto3

        bucket, _, prefix = destination.removeprefix("s3://").partition("/")
        s3 = boto3.client("s3")
        for path in files:
            key = "/".join(filter(None, [prefix.rstrip("/"), path.relative_to(folder).as_posix()]))
            s3.upload_file(str(path), bucket, key)
        return
    for path in files:
        target = Path(destination) / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def collect_outputs(
    spec: contract.ProcessingJobSpec, hosts: list[Host], destinations: Mapping[str, str]
) -> None:
    """Every host's output folders into their destinations, as SageMaker uploads them at the end.

    An output no host wrote anything to fails the job: on SageMaker it would be silently empty,
    and the usual cause is a script writing to another path than the spec names.
    """
    for output in spec.outputs:
        if not any(_written(host.local(output.path)) for host in hosts):
            raise JobFailedError(
                spec.job_name,
                f"output {output.name!r}: the script never wrote anything to {output.path}",
            )
    for output in spec.outputs:
        for host in hosts:
            deliver(host.local(output.path), destinations[output.name])


class LocalProcessor:
    """Runs processing jobs on this machine, with the interpreter that runs Flywheel."""

    def __init__(
        self,
        python: str = sys.executable,
        output_root: Path = DEFAULT_OUTPUT_ROOT,
        ml_root: Path = ML_ROOT,
    ) -> None:
        # ``ml_root``: a pod's /opt/ml volume, used when no private mount of /opt/ml is possible.
        self._python = python
        self._output_root = output_root
        self._ml_root = ml_root

    def destinations(self, spec: contract.ProcessingJobSpec) -> dict[str, str]:
        """Each output's destination: its own, else ``<output_root>/<job>/<output name>``."""
        return {
            o.name: o.destination or str(self._output_root / spec.job_name / o.name)
            for o in spec.outputs
        }

    def _clear_default_destinations(self, spec: contract.ProcessingJobSpec) -> None:
        """A re-run of a job name replaces what the last run left in the folders Flywheel chose."""
        for output in spec.outputs:
            if not output.destination:
                shutil.rmtree(self._output_root / spec.job_name / output.name, ignore_errors=True)

    def process(
        self, spec: contract.ProcessingJobSpec, log: LogSink = print
    ) -> contract.ProcessingResult:
        """Run ``spec`` on ``spec.instance_count`` local hosts; collect every output.

        Raises ``InvalidSpecError`` before anything runs, ``JobFailedError`` with the failing
        host's reason (or naming an output never written) after.
        """
        contract.check_spec(spec)
        try:
            if spec.entry_point:
                check_source(Path(spec.source_dir), spec.entry_point)
            elif not Path(spec.source_dir).is_dir():  # its own entrypoint; the code still travels
                raise InvalidSpecError("source_dir", f"{spec.source_dir} is not a folder")
        except InvalidSpecError as error:
            raise InvalidSpecError(f"processing.{error.field}", error.problem) from None
        with tempfile.TemporaryDirectory(prefix=f"flywheel-{spec.job_name[:40]}-") as temporary:
            scratch = Path(temporary)
            inputs = stage_inputs(spec, scratch)
            claimed = not private_mounts_available()
            if claimed and not (spec.instance_count == 1 and claim_ml_root(self._ml_root)):
                raise JobFailedError(
                    spec.job_name,
                    "processing scripts read /opt/ml/processing, and this machine allows no "
                    f"private mount of /opt/ml (unshare) while {self._ml_root} is not an empty "
                    "folder for a single host to use",
                )
            try:
                return self._process(spec, scratch, inputs, claimed=claimed, log=log)
            finally:
                if claimed:
                    empty_folder(self._ml_root)

    def _process(
        self,
        spec: contract.ProcessingJobSpec,
        scratch: Path,
        inputs: list[StagedInput],
        *,
        claimed: bool,
        log: LogSink,
    ) -> contract.ProcessingResult:
        destinations = self.destinations(spec)
        runproc = scratch / contract.RUNPROC_SCRIPT
        runproc.write_text(contract.runproc_script(spec.entry_point))
        code = {
            contract.CODE_INPUT: pack_source(Path(spec.source_dir), scratch),
            contract.ENTRYPOINT_INPUT: runproc,
        }
        job_config = contract.processing_job_config(
            spec,
            arn=spec.job_name,
            image=LOCAL_IMAGE,
            inputs={
                **{staged.item.name: staged.uri for staged in inputs},
                **{name: file.as_uri() for name, file in code.items()},
            },
            outputs={
                name: d if d.startswith("s3://") else Path(d).resolve().as_uri()
                for name, d in destinations.items()
            },
            instance_type=LOCAL_INSTANCE_TYPE,
        )
        hosts = []
        commands = []
        for index, name in enumerate(contract.host_names(spec.instance_count)):
            if spec.host_indexes and index not in spec.host_indexes:
                continue  # another task runs that host (one task per shard)
            folder = scratch / "hosts" / name
            host = Host(name, index, self._ml_root if claimed else folder / "ml", folder)
            lay_out_host(
                spec, host, inputs=inputs, code=code, job_config=job_config, python=self._python
            )
            prefix = () if claimed else opt_ml_prefix(host.ml_root, folder / "opt-view")
            command = [*prefix, *contract.container_entrypoint(spec), *spec.arguments]
            hosts.append(host)
            commands.append(
                HostCommand(
                    f"{spec.job_name} {name}", command, host_environment(spec, host), CONTAINER_CWD
                )
            )
        shown = ", ".join(host.name for host in hosts)
        log(
            f"[{spec.job_name}] processing: {spec.entry_point} from {spec.source_dir} "
            f"on {shown} of {spec.instance_count} host(s)"
        )
        outcomes = run_hosts(commands, log)
        # The host that failed first, not one stopped because of it.
        failed = sorted(
            (
                (outcome.stopped, host.index, host, outcome)
                for host, outcome in zip(hosts, outcomes, strict=True)
                if outcome.status != 0
            ),
            key=lambda entry: entry[:2],
        )
        if failed:
            *_, host, outcome = failed[0]
            log(f"[{spec.job_name} {host.name}] exited with status {outcome.status}")
            raise JobFailedError(spec.job_name, failure_reason(host, outcome))
        self._clear_default_destinations(spec)
        collect_outputs(spec, hosts, destinations)
        log(f"[{spec.job_name}] completed: {', '.join(destinations.values()) or 'no outputs'}")
        return contract.ProcessingResult(spec.job_name, destinations)
