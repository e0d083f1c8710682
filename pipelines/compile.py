"""Compile every pipeline to KFP IR YAML in a committed folder, and check that folder is fresh."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from kfp import compiler

from pipelines.catalog import PIPELINES

COMPILED_DIR = Path(__file__).parent / "compiled"


@dataclass(frozen=True)
class StaleFile:
    path: Path
    problem: str


def compile_all(output_dir: Path = COMPILED_DIR) -> list[Path]:
    """Write ``<name>.yaml`` for every pipeline; the bytes depend only on the pipeline's code."""
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, pipeline in PIPELINES.items():
        target = output_dir / f"{name}.yaml"
        compiler.Compiler().compile(pipeline, str(target))
        written.append(target)
    return written


def stale_files(output_dir: Path = COMPILED_DIR) -> list[StaleFile]:
    """Compiled files that differ from what the code compiles to now, or are missing or extra."""
    problems = []
    with tempfile.TemporaryDirectory() as scratch:
        fresh = {path.name: path for path in compile_all(Path(scratch))}
        for name, path in fresh.items():
            committed = output_dir / name
            if not committed.is_file():
                problems.append(StaleFile(committed, "missing"))
            elif committed.read_bytes() != path.read_bytes():
                problems.append(StaleFile(committed, "out of date"))
    for committed in sorted(output_dir.glob("*.yaml")):
        if committed.name not in fresh:
            problems.append(StaleFile(committed, "no pipeline compiles to it"))
    return problems
