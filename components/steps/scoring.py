"""Batch scoring in shards, so a large batch fans out over ``dsl.ParallelFor``."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flywheel.components.compute import backend_for
from flywheel.components.compute.backend import LogSink, TransformJobSpec
from flywheel.components.contract.workload import Workload, load_workload
from flywheel.components.data import payloads
from flywheel.components.data.rows import Row, read_table
from flywheel.components.errors import InvalidSpecError
from flywheel.components.steps.train import job_name_for


def plan_shards(*, batch_path: Path, rows_per_shard: int) -> list[int]:
    """Shard indexes for a batch: one shard per ``rows_per_shard`` rows, at least one."""
    if rows_per_shard < 1:
        raise InvalidSpecError("rows_per_shard", f"must be at least 1, got {rows_per_shard}")
    _, rows = read_table(str(batch_path))
    return list(range(max(1, math.ceil(len(rows) / rows_per_shard))))


def transform_rows(
    *,
    workload: Workload,
    compute: str,
    compute_config: Mapping[str, Any] | None,
    model_path: Path,
    rows: Sequence[Row],
    job_name: str,
    log: LogSink = print,
) -> list[str]:
    """Batch-transform ``rows``' feature columns; one prediction per row, in order.

    The rows go in the workload's ``serving.content_type`` and come back in its ``accept``, the
    script called as its ``split_type`` and ``batch_strategy`` say.
    """
    serving = workload.serving
    with tempfile.TemporaryDirectory(prefix="flywheel-score-") as scratch:
        request = payloads.write_request(
            Path(scratch) / "input",
            workload.columns.features,
            rows,
            serving.content_type,
            serving.split_type,
        )
        output = Path(scratch) / "output"
        backend_for(compute, compute_config).transform(
            TransformJobSpec(
                job_name=job_name,
                model_artifact=str(model_path),
                source_dir=str(workload.serving_source_dir),
                entry_point=workload.serving_entry_point,
                input_location=str(request.parent),
                output_location=str(output),
                content_type=serving.content_type,
                accept=serving.accept,
                split_type=serving.split_type,
                batch_strategy=serving.batch_strategy,
                framework=workload.framework,
                dependencies=tuple(str(folder) for folder in workload.serving_dependencies),
            ),
            log,
        )
        predictions = payloads.read_response(
            output / f"{request.name}.out",
            serving.accept,
            serving.split_type,
            serving.batch_strategy,
        )
    if len(predictions) != len(rows):
        hint = (
            "; a script that predicts one value per request needs serving.split_type: Line "
            "and serving.batch_strategy: SingleRecord"
            if len(predictions) < len(rows)
            and (serving.split_type, serving.batch_strategy) != ("Line", "SingleRecord")
            else ""
        )
        raise InvalidSpecError(
            "predictions",
            f"{job_name}: {len(predictions)} predictions for {len(rows)} rows{hint}",
        )
    return predictions


def score_shard(
    *,
    workload_path: str,
    compute: str,
    compute_config: Mapping[str, Any] | None,
    model_path: Path,
    batch_path: Path,
    shard: int,
    shard_count: int,
    predictions_path: Path,
    log: LogSink = print,
) -> int:
    """Score rows ``shard::shard_count`` of the batch; writes ``id,prediction`` lines, returns the count."""
    workload = load_workload(workload_path)
    _, rows = read_table(str(batch_path))
    mine = rows[shard::shard_count]
    predictions = transform_rows(
        workload=workload,
        compute=compute,
        compute_config=compute_config,
        model_path=model_path,
        rows=mine,
        job_name=job_name_for(workload.name, "score", str(model_path), str(batch_path), shard),
        log=log,
    )
    ids = [row[workload.columns.id] for row in mine]
    predictions_path.parent.mkdir(parents=True, exist_ok=True)
    predictions_path.write_text(
        "".join(f"{i},{p}\n" for i, p in zip(ids, predictions, strict=True))
    )
    return len(mine)


def read_scored(paths: Sequence[Path]) -> dict[str, str]:
    """Every shard's predictions by row id (the raw text after the id: a value, or ``label,score``)."""
    scored: dict[str, str] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            row_id, _, prediction = line.partition(",")
            scored[row_id] = prediction
    return scored
