"""Local training: the contract laid out in a scratch folder, the script run as a subprocess."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from flywheel.components import contract
from flywheel.components.backend import LogSink, TrainingJobSpec, TrainingResult
from flywheel.components.errors import InvalidSpecError, JobFailedError
from flywheel.components.local.process import crash_reason, stream_process
from flywheel.components.metrics import MetricCollector
from flywheel.components.packaging import MODEL_ARCHIVE, OUTPUT_ARCHIVE, pack_folder


def stage_source(source_dir: Path, entry_point: str, code_dir: Path) -> Path:
    """Copy the user's code to ``code_dir`` (SageMaker's ``/opt/ml/code``) and find the script."""
    if not source_dir.is_dir():
        raise InvalidSpecError("source_dir", f"{source_dir} is not a folder")
    if not (source_dir / entry_point).is_file():
        raise InvalidSpecError("entry_point", f"{entry_point} is not a file in {source_dir}")
    shutil.copytree(source_dir, code_dir, ignore=shutil.ignore_patterns("__pycache__"))
    return code_dir / entry_point


def stage_channels(spec: TrainingJobSpec, layout: contract.ContractLayout) -> None:
    """Copy each channel's file or folder into ``input/data/<channel>``, as File mode does."""
    for channel, location in spec.channels.items():
        contract.validate_channel_name(channel)
        source = Path(location)
        target = layout.channel_dir(channel)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        elif source.is_file():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / source.name)
        else:
            raise InvalidSpecError(f"channels.{channel}", f"{location} does not exist")


class LocalTrainer:
    """Trains on this machine with the interpreter that runs Flywheel."""

    def __init__(self, python: str = sys.executable, launcher: tuple[str, ...] = ()) -> None:
        # ``launcher`` lets a backend wrap the script (``torchrun --nproc_per_node=N``).
        self._python = python
        self._launcher = launcher

    def train(self, spec: TrainingJobSpec, log: LogSink = print) -> TrainingResult:
        job_output = Path(spec.output_location) / spec.job_name / "output"
        with tempfile.TemporaryDirectory(prefix=f"flywheel-{spec.job_name[:40]}-") as scratch:
            layout = contract.layout_for(Path(scratch) / "opt" / "ml")
            layout.create(list(spec.channels))
            script = stage_source(Path(spec.source_dir), spec.entry_point, layout.root / "code")
            stage_channels(spec, layout)
            contract.write_hyperparameters_file(layout, spec.hyperparameters)
            environment = {
                **contract.environment_for(
                    layout, list(spec.channels), spec.hyperparameters, num_cpus=os.cpu_count() or 1
                ),
                **spec.environment,
            }
            command = (
                [*self._launcher, script.name] if self._launcher else [self._python, script.name]
            )
            collector = MetricCollector(spec.metric_definitions)

            def observe(line: str) -> None:
                collector.observe(line)
                log(line)

            log(f"[{spec.job_name}] training: {spec.entry_point} in {script.parent}")
            status, tail = stream_process(
                command, cwd=script.parent, environment=environment, log=observe
            )
            if status != 0:
                reason = contract.read_failure_reason(layout) or crash_reason(tail)
                raise JobFailedError(
                    spec.job_name, f"{spec.entry_point} exited with status {status}: {reason}"
                )
            model_artifact = pack_folder(layout.model_dir, job_output / MODEL_ARCHIVE)
            output_artifact = None
            if any(layout.output_data_dir.iterdir()):
                output_artifact = str(
                    pack_folder(layout.output_data_dir, job_output / OUTPUT_ARCHIVE)
                )
        log(f"[{spec.job_name}] completed: {model_artifact}")
        return TrainingResult(
            job_name=spec.job_name,
            model_artifact=str(model_artifact),
            metrics=dict(collector.final),
            output_data_artifact=output_artifact,
        )
