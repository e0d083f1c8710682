"""Local batch transform: unpack the model, serve it in a subprocess, score every input file."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from flywheel.components.compute.backend import LogSink, TransformJobSpec, TransformResult
from flywheel.components.compute.local.process import crash_reason, stream_process
from flywheel.components.contract.packaging import unpack_archive
from flywheel.components.errors import InvalidSpecError, JobFailedError


def input_files(location: Path) -> list[Path]:
    """A file, or every file under a folder (sorted), as SageMaker lists an S3 prefix."""
    if location.is_file():
        return [location]
    if location.is_dir():
        files = sorted(p for p in location.rglob("*") if p.is_file())
        if files:
            return files
    raise InvalidSpecError("input_location", f"{location} holds no input files")


class LocalTransformer:
    def __init__(self, python: str = sys.executable) -> None:
        self._python = python

    def transform(self, spec: TransformJobSpec, log: LogSink = print) -> TransformResult:
        inputs = input_files(Path(spec.input_location))
        source_dir = Path(spec.source_dir)
        if not (source_dir / spec.entry_point).is_file():
            raise InvalidSpecError(
                "entry_point", f"{spec.entry_point} is not a file in {source_dir}"
            )
        with tempfile.TemporaryDirectory(prefix="flywheel-transform-") as scratch:
            model_dir = unpack_archive(Path(spec.model_artifact), Path(scratch) / "model")
            command = [
                self._python,
                "-m",
                "flywheel.components.compute.local.serving",
                "--source-dir",
                str(source_dir.resolve()),
                "--entry-point",
                spec.entry_point,
                "--model-dir",
                str(model_dir),
                "--output-dir",
                str(Path(spec.output_location).resolve()),
                "--content-type",
                spec.content_type,
                "--accept",
                spec.accept,
                "--split-type",
                spec.split_type,
                "--batch-strategy",
                spec.batch_strategy,
                *(str(path.resolve()) for path in inputs),
            ]
            log(f"[{spec.job_name}] transforming {len(inputs)} file(s)")
            status, tail = stream_process(
                command, cwd=Path(scratch), environment=dict(spec.environment), log=log
            )
        if status != 0:
            raise JobFailedError(
                spec.job_name, f"transform exited with status {status}: {crash_reason(tail)}"
            )
        return TransformResult(job_name=spec.job_name, output_location=spec.output_location)
