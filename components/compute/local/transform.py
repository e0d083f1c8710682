"""Local batch transform: unpack the model, lay out its serving code, score every input file.

The model is served in a subprocess of its own (``serving.py``), with the serving code where the
framework's container would find it (``serving_code.py``). The EKS backend runs this same class.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from flywheel.components.compute.backend import LogSink, TransformJobSpec, TransformResult
from flywheel.components.compute.local import serving_code
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
        source_dir = Path(spec.source_dir).resolve()
        if not (source_dir / spec.entry_point).is_file():
            raise InvalidSpecError(
                "entry_point", f"{spec.entry_point} is not a file in {source_dir}"
            )
        dependencies = tuple(Path(d).resolve() for d in spec.dependencies)
        with tempfile.TemporaryDirectory(prefix="flywheel-transform-") as temporary:
            scratch = Path(temporary)
            model_dir = unpack_archive(Path(spec.model_artifact), scratch / "model")
            environment = dict(spec.environment)
            if spec.framework == "pytorch":
                code_dir = serving_code.repack_code(model_dir, source_dir, dependencies)
                site = scratch / "site"
                serving_code.install_requirements(
                    code_dir, site, python=self._python, job_name=spec.job_name, log=log
                )
                environment["PYTHONPATH"] = serving_code.job_python_path(site, spec.environment)
            submit_dir = serving_code.submit_directory(
                spec.framework, source_dir, dependencies, scratch
            )
            command = [
                self._python,
                "-m",
                "flywheel.components.compute.local.serving",
                "--source-dir",
                str(submit_dir),
                "--entry-point",
                spec.entry_point,
                "--model-dir",
                str(model_dir),
                "--output-dir",
                str(Path(spec.output_location).resolve()),
                *(["--framework", spec.framework] if spec.framework else []),
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
            shown = spec.framework or "generic sagemaker-inference"
            log(f"[{spec.job_name}] transforming {len(inputs)} file(s), {shown} default handlers")
            status, tail = stream_process(command, cwd=scratch, environment=environment, log=log)
        if status != 0:
            raise JobFailedError(
                spec.job_name, f"transform exited with status {status}: {crash_reason(tail)}"
            )
        return TransformResult(job_name=spec.job_name, output_location=spec.output_location)
