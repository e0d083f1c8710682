"""Process: run a SageMaker Processing script on the chosen compute and collect its outputs.

The step turns plain values and paths into a :class:`ProcessingJobSpec`: each input (a local path
or an ``s3://`` prefix) appears at its ``/opt/ml/processing/...`` folder, and each output is
collected into ``<outputs_dir>/<name>/``. The backend does the rest, the same way everywhere.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from flywheel.components.compute import backend_for
from flywheel.components.compute.backend import LogSink
from flywheel.components.contract.packaging import sha256_of_tree
from flywheel.components.contract.processing import (
    ProcessingInput,
    ProcessingJobSpec,
    ProcessingOutput,
    check_spec,
)
from flywheel.components.contract.workload import is_builtin, workload_file
from flywheel.components.data.bundles import is_bundle
from flywheel.components.errors import InvalidSpecError

INPUT_KEYS = ("source", "local_path", "distribution")
OUTPUT_KEYS = ("local_path",)


@dataclass(frozen=True)
class Processed:
    job_name: str
    outputs: dict[str, str]
    code_sha256: str


def parse_inputs(raw: Mapping[str, Any]) -> tuple[ProcessingInput, ...]:
    """``name: source`` or ``name: {source, local_path, distribution}``, each checked for its keys."""
    parsed = []
    for name, value in raw.items():
        settings = {"source": value} if isinstance(value, str) else value
        if not isinstance(settings, Mapping):
            raise InvalidSpecError(
                f"processing.inputs.{name}",
                f"must be a path, an s3:// prefix or a mapping, got {value!r}",
            )
        unknown = sorted(set(settings) - set(INPUT_KEYS))
        if unknown:
            raise InvalidSpecError(
                f"processing.inputs.{name}.{unknown[0]}",
                f"unknown key; allowed: {list(INPUT_KEYS)}",
            )
        parsed.append(ProcessingInput(name=str(name), **{k: str(v) for k, v in settings.items()}))
    return tuple(parsed)


def parse_outputs(raw: Sequence[Any] | Mapping[str, Any]) -> tuple[ProcessingOutput, ...]:
    """Output names, or ``name: local_path`` / ``name: {local_path}``; each lands in ``<name>/``."""
    items = raw.items() if isinstance(raw, Mapping) else ((name, {}) for name in raw)
    parsed = []
    for name, value in items:
        settings = {"local_path": value} if isinstance(value, str) else dict(value or {})
        unknown = sorted(set(settings) - set(OUTPUT_KEYS))
        if unknown:
            raise InvalidSpecError(
                f"processing.outputs.{name}.{unknown[0]}",
                f"unknown key; allowed: {list(OUTPUT_KEYS)}",
            )
        parsed.append(
            ProcessingOutput(name=str(name), local_path=str(settings.get("local_path", "")))
        )
    return tuple(parsed)


def script_folder(reference: str) -> Path:
    """The folder a script lives in: a folder, a code bundle's ``s3://`` URI (``flywheel bundle``,
    which carries it to a cluster as for training) or a packaged example (``builtin:qsar``)."""
    if is_bundle(reference) or is_builtin(reference):
        return workload_file(reference).parent
    return Path(reference)


def materialised(inputs: Sequence[ProcessingInput], scratch: Path) -> tuple[ProcessingInput, ...]:
    """Inputs as the backend stages them: a packaged dataset (``builtin:``) written as a CSV file.

    The job's name is computed from the inputs as given, so this changes nothing it depends on.
    """
    # pyarrow only when this runs: evaluation imports this module whether or not it has a script.
    from flywheel.components.data import tables

    staged = []
    for item in inputs:
        if item.source.startswith(tables.BUILTIN_PREFIX):
            folder = scratch / item.name
            folder.mkdir(parents=True)
            table = tables.open_table(item.source, f"processing.inputs.{item.name}").read()
            item = replace(item, source=str(tables.write_csv(folder / "data.csv", table)))
        staged.append(item)
    return tuple(staged)


def processing_job_name(prefix: str, *parts: object) -> str:
    """A deterministic job name: the same script, inputs and settings give the same name."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return f"{prefix[:50]}-{digest[:12]}"


def run_processing(
    *,
    source_dir: str,
    entry_point: str,
    compute: str,
    compute_config: Mapping[str, Any] | None = None,
    inputs: Sequence[ProcessingInput],
    outputs: Sequence[ProcessingOutput],
    outputs_dir: Path,
    arguments: Sequence[str] = (),
    environment: Mapping[str, str] | None = None,
    container_entrypoint: Sequence[str] = (),
    instance_count: int = 1,
    host_indexes: Sequence[int] = (),
    job_prefix: str = "processing",
    log: LogSink = print,
) -> Processed:
    """Run ``entry_point`` from ``source_dir`` (see :func:`script_folder`) as a processing job;
    outputs land in ``outputs_dir``.

    Everything is checked before the job starts: the script, the spec (``check_spec``) and the
    compute settings. ``host_indexes`` runs only those hosts of ``instance_count`` (one task per
    host, each its own pod on EKS); their outputs are merged by the caller.
    """
    folder = script_folder(source_dir)
    if not folder.is_dir():
        raise InvalidSpecError("processing.source_dir", f"{source_dir} is not a folder")
    if not container_entrypoint and not (folder / entry_point).is_file():
        raise InvalidSpecError(
            "processing.entry_point", f"{entry_point} is not a file in {source_dir}"
        )
    backend = backend_for(compute, compute_config)
    code_sha256 = sha256_of_tree(folder)
    destinations = tuple(
        ProcessingOutput(
            name=o.name, local_path=o.local_path, destination=str(outputs_dir / o.name)
        )
        for o in outputs
    )
    spec = check_spec(
        ProcessingJobSpec(
            job_name=processing_job_name(
                job_prefix,
                code_sha256,
                entry_point,
                [asdict(i) for i in inputs],
                [asdict(o) for o in outputs],
                list(arguments),
                dict(environment or {}),
                list(container_entrypoint),
                instance_count,
                list(host_indexes),
            ),
            source_dir=str(folder),
            entry_point=entry_point,
            inputs=tuple(inputs),
            outputs=destinations,
            arguments=tuple(arguments),
            environment=dict(environment or {}),
            container_entrypoint=tuple(container_entrypoint),
            instance_count=instance_count,
            host_indexes=tuple(host_indexes),
        )
    )
    if outputs_dir.exists():
        shutil.rmtree(outputs_dir)
    outputs_dir.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="flywheel-process-") as scratch:
        spec = replace(spec, inputs=materialised(spec.inputs, Path(scratch)))
        result = backend.process(spec, log)
    return Processed(
        job_name=result.job_name, outputs=dict(result.outputs), code_sha256=code_sha256
    )


def artifact_input(
    name: str, artifact_path: Path, local_path: str, scratch: Path, file_name: str
) -> ProcessingInput:
    """A KFP artifact as a processing input: a folder as it is; a single file as ``file_name``.

    KFP names an artifact's file after the output (``model``, ``test``), while scripts written for
    SageMaker look for ``model.tar.gz`` or ``test.csv``: the file is staged under that name.
    """
    if artifact_path.is_dir():
        return ProcessingInput(name=name, source=str(artifact_path), local_path=local_path)
    if not artifact_path.is_file():
        raise InvalidSpecError(f"processing.{name}", f"{artifact_path} does not exist")
    staged = scratch / name
    staged.mkdir(parents=True, exist_ok=True)
    shutil.copy2(artifact_path, staged / file_name)
    return ProcessingInput(name=name, source=str(staged), local_path=local_path)


def merge_folders(parts: Sequence[Path], target: Path) -> None:
    """Every file of each part into ``target`` by its relative path, later parts winning."""
    target.mkdir(parents=True, exist_ok=True)
    for part in parts:
        for path in sorted(p for p in part.rglob("*") if p.is_file()):
            destination = target / path.relative_to(part)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
