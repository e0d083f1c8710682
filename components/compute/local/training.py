"""Local training: the contract laid out in a scratch folder, the toolkit run as a subprocess."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from flywheel.components.compute.backend import LogSink, TrainingJobSpec, TrainingResult
from flywheel.components.compute.local.toolkit import run_toolkit, stage_job
from flywheel.components.contract import training as contract
from flywheel.components.contract.metrics import MetricCollector
from flywheel.components.contract.packaging import MODEL_ARCHIVE, OUTPUT_ARCHIVE, pack_folder
from flywheel.components.errors import InvalidSpecError, JobFailedError


def check_source(source_dir: Path, entry_point: str) -> None:
    """Refuse a missing folder or script before anything is staged."""
    if not source_dir.is_dir():
        raise InvalidSpecError("source_dir", f"{source_dir} is not a folder")
    if not (source_dir / entry_point).is_file():
        raise InvalidSpecError("entry_point", f"{entry_point} is not a file in {source_dir}")


def download_channel(uri: str, target: Path) -> None:
    """Every object under the S3 prefix ``uri`` into ``target``, as SageMaker's File mode copies it.

    The prefix matches as S3Prefix does: ``s3://b/train`` matches ``train/a.csv`` and ``train.csv``.
    """
    import boto3

    # Split by hand: the prefix is matched as given, a trailing "/" included, as S3Prefix is.
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")
    found = False
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix) :].lstrip("/") or Path(item["Key"]).name
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(destination))
            found = True
    if not found:
        raise InvalidSpecError("channels", f"{uri} holds no objects")


def stage_channels(spec: TrainingJobSpec, layout: contract.ContractLayout) -> None:
    """Copy each channel's file, folder or S3 prefix into ``input/data/<channel>``, as File mode does."""
    for channel, location in spec.channels.items():
        contract.validate_channel_name(channel)
        source = Path(location)
        target = layout.channel_dir(channel)
        if location.startswith("s3://"):
            download_channel(location, target)
        elif source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        elif source.is_file():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / source.name)
        else:
            raise InvalidSpecError(f"channels.{channel}", f"{location} does not exist")


def claim_ml_root(ml_root: Path) -> bool:
    """Whether this job may lay out in ``ml_root`` itself: an empty, writable folder.

    That is a task pod's ``/opt/ml`` volume (the EKS placement mounts one), where hard-coded
    paths then work as on SageMaker. Creating ``model/`` claims it: a second job finds it in use.
    """
    if not ml_root.is_dir() or any(ml_root.iterdir()):
        return False
    try:
        (ml_root / "model").mkdir()
    except OSError:
        return False
    return True


def empty_folder(folder: Path) -> None:
    """Remove what a job left in a claimed ``/opt/ml``, so the next job can claim it."""
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


class LocalTrainer:
    """Trains on this machine, under the toolkit, with the interpreter that runs Flywheel."""

    def __init__(
        self,
        python: str = sys.executable,
        processes_per_host: int = 1,
        ml_root: Path = contract.ML_ROOT,
    ) -> None:
        # More than one process per host starts the script under torchrun (the EKS GPU backend).
        self._python = python
        self._processes_per_host = processes_per_host
        self._ml_root = ml_root

    def train(self, spec: TrainingJobSpec, log: LogSink = print) -> TrainingResult:
        check_source(Path(spec.source_dir), spec.entry_point)
        with tempfile.TemporaryDirectory(prefix=f"flywheel-{spec.job_name[:40]}-") as scratch:
            if not claim_ml_root(self._ml_root):
                return self._train(
                    spec, contract.layout_for(Path(scratch) / "opt" / "ml"), Path(scratch), log
                )
            try:
                return self._train(spec, contract.layout_for(self._ml_root), Path(scratch), log)
            finally:
                empty_folder(self._ml_root)

    def _train(
        self, spec: TrainingJobSpec, layout: contract.ContractLayout, scratch: Path, log: LogSink
    ) -> TrainingResult:
        job_output = Path(spec.output_location) / spec.job_name / "output"
        layout.create(list(spec.channels))
        stage_channels(spec, layout)
        stage_job(
            spec,
            layout,
            scratch=scratch,
            content_types={name: spec.content_types.get(name, "") for name in spec.channels},
            processes_per_host=self._processes_per_host,
        )
        collector = MetricCollector(spec.metric_definitions)

        def observe(line: str) -> None:
            collector.observe(line)
            log(line)

        log(f"[{spec.job_name}] training: {spec.entry_point} from {spec.source_dir}")
        outcome = run_toolkit(
            spec,
            layout,
            scratch=scratch,
            python=self._python,
            processes_per_host=self._processes_per_host,
            log=observe,
        )
        if outcome.install is not None:
            raise JobFailedError(
                spec.job_name,
                f"installing {outcome.install} failed, so {spec.entry_point} never started: "
                f"{outcome.reason}",
            )
        if outcome.status != 0:
            raise JobFailedError(
                spec.job_name,
                f"{spec.entry_point} exited with status {outcome.status}: {outcome.reason}",
            )
        model_artifact = pack_folder(layout.model_dir, job_output / MODEL_ARCHIVE)
        output_artifact = None
        if any(layout.output_data_dir.iterdir()):
            output_artifact = str(pack_folder(layout.output_data_dir, job_output / OUTPUT_ARCHIVE))
        log(f"[{spec.job_name}] completed: {model_artifact}")
        return TrainingResult(
            job_name=spec.job_name,
            model_artifact=str(model_artifact),
            metrics=dict(collector.final),
            output_data_artifact=output_artifact,
            metric_series=dict(collector.series),
        )
