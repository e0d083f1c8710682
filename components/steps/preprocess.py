"""Preprocess: run the workload's own preprocessing script on the source table, before the split.

The script gets the source at its ``input`` folder (a packaged dataset is written there as
``data.csv``) and writes exactly one table, CSV or Parquet, to its ``output`` folder; that
table is what the split then reads and checks, as if it had been the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flywheel.components.compute.backend import LogSink
from flywheel.components.contract.processing import ProcessingInput, ProcessingOutput
from flywheel.components.contract.workload import Workload
from flywheel.components.data import tables
from flywheel.components.errors import InvalidSpecError
from flywheel.components.steps.process import run_processing

PREPROCESSED_OUTPUT = "data"


def one_table(location: Path, field: str) -> Path:
    """The table at ``location``: the file itself, or the one CSV or Parquet file in the folder."""
    if location.is_file():
        return location
    found = sorted(
        path for path in location.rglob("*") if path.is_file() and path.suffix in tables.FORMATS
    )
    if len(found) != 1:
        have = [str(path.relative_to(location)) for path in found] or "nothing"
        raise InvalidSpecError(
            field, f"needs exactly one CSV or Parquet table in {location}; it holds {have}"
        )
    return found[0]


def preprocess_source(
    *,
    workload: Workload,
    source: str,
    compute: str,
    compute_config: Mapping[str, Any] | None,
    scratch: Path,
    log: LogSink = print,
) -> Path:
    """Run the preprocessing script over ``source``; the table it wrote, under ``scratch``."""
    script = workload.preprocessing
    assert script is not None, "only for workloads with a preprocessing script"
    processed = run_processing(
        source_dir=str(script.source_dir),
        entry_point=script.entry_point,
        compute=compute,
        compute_config=compute_config,
        inputs=(ProcessingInput("data", source, script.paths["input"]),),
        outputs=(ProcessingOutput(PREPROCESSED_OUTPUT, script.paths["output"]),),
        outputs_dir=scratch / "outputs",
        arguments=script.arguments,
        environment=script.environment,
        instance_count=script.instance_count,
        job_prefix=f"{workload.name}-preprocess",
        log=log,
    )
    return one_table(Path(processed.outputs[PREPROCESSED_OUTPUT]), "preprocessing.output")
