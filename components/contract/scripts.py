"""A workload's own processing scripts: preprocessing before the split, evaluation after training.

Both run under SageMaker Processing's contract (``contract.processing``) on the run's compute.
``preprocessing`` gets the source table at ``input`` and writes one table to ``output``, which the
split then reads. ``evaluation`` gets the model (``model.tar.gz``) at ``model`` and the held-out
rows, laid out as the workload's ``test`` channel, at ``test``; it writes a JSON report (SageMaker
Pipelines' ``evaluation.json``) to ``output``, whose ``metrics`` (name to a JSON path such as
``regression_metrics.mse.value``) replace the built-in ones, and the objective is one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.components.contract.keys import check_keys
from flywheel.components.contract.processing import PROCESSING_ROOT
from flywheel.components.errors import InvalidSpecError

PREPROCESSING_KEYS = (
    "entry_point",
    "source_dir",
    "arguments",
    "environment",
    "input",
    "output",
    "instance_count",
)
EVALUATION_KEYS = (
    "entry_point",
    "source_dir",
    "arguments",
    "environment",
    "model",
    "test",
    "output",
    "report",
    "metrics",
)


@dataclass(frozen=True)
class ScriptStep:
    """A processing script of the workload, with where its inputs and outputs sit in the container."""

    source_dir: Path
    entry_point: str
    arguments: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    # LocalPath by role: ``input``/``output`` (preprocessing) or ``model``/``test``/``output``.
    paths: Mapping[str, str] = field(default_factory=dict)
    instance_count: int = 1
    report: str = "evaluation.json"
    # Metric name -> JSON path in the report (evaluation only).
    metrics: Mapping[str, str] = field(default_factory=dict)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise InvalidSpecError(where, f"must be a list of strings, got {value!r}")
    return tuple(str(v) for v in value)


def _string_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidSpecError(where, f"must map names to values, got {value!r}")
    return {k: str(v) for k, v in value.items()}


def parse_script_step(
    raw: Any,
    section: str,
    *,
    workload_dir: Path,
    default_source_dir: Path,
    allowed: tuple[str, ...],
    default_paths: Mapping[str, str],
) -> ScriptStep:
    """One section (``preprocessing`` or ``evaluation``) checked key by key, naming each field."""
    if not isinstance(raw, Mapping):
        raise InvalidSpecError(section, f"must be a mapping with entry_point, got {raw!r}")
    check_keys(raw, allowed, f"{section}.")
    entry_point = raw.get("entry_point")
    if not isinstance(entry_point, str) or not entry_point:
        raise InvalidSpecError(f"{section}.entry_point", "required: the script's file name")
    source_dir = (
        (workload_dir / raw["source_dir"]).resolve() if "source_dir" in raw else default_source_dir
    )
    if not (source_dir / entry_point).is_file():
        raise InvalidSpecError(
            f"{section}.entry_point", f"{entry_point} is not a file in {source_dir}"
        )
    paths = dict(default_paths)
    for role in default_paths:
        if role in raw:
            path = str(raw[role])
            if not path.startswith(f"{PROCESSING_ROOT}/"):
                raise InvalidSpecError(
                    f"{section}.{role}", f"{path} is not a folder under {PROCESSING_ROOT}"
                )
            paths[role] = path
    count = raw.get("instance_count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidSpecError(
            f"{section}.instance_count", f"must be a whole number >= 1, got {count!r}"
        )
    metrics = _string_map(raw.get("metrics", {}), f"{section}.metrics")
    return ScriptStep(
        source_dir=source_dir,
        entry_point=entry_point,
        arguments=_strings(raw.get("arguments", []), f"{section}.arguments"),
        environment=_string_map(raw.get("environment", {}), f"{section}.environment"),
        paths=paths,
        instance_count=count,
        report=str(raw.get("report", "evaluation.json")),
        metrics=metrics,
    )


def preprocessing_of(
    raw: Mapping[str, Any], workload_dir: Path, source_dir: Path
) -> ScriptStep | None:
    if raw.get("preprocessing") is None:
        return None
    return parse_script_step(
        raw["preprocessing"],
        "preprocessing",
        workload_dir=workload_dir,
        default_source_dir=source_dir,
        allowed=PREPROCESSING_KEYS,
        default_paths={
            "input": f"{PROCESSING_ROOT}/input/data",
            "output": f"{PROCESSING_ROOT}/output/data",
        },
    )


def evaluation_of(
    raw: Mapping[str, Any], workload_dir: Path, source_dir: Path
) -> ScriptStep | None:
    if raw.get("evaluation") is None:
        return None
    step = parse_script_step(
        raw["evaluation"],
        "evaluation",
        workload_dir=workload_dir,
        default_source_dir=source_dir,
        allowed=EVALUATION_KEYS,
        default_paths={
            "model": f"{PROCESSING_ROOT}/model",
            "test": f"{PROCESSING_ROOT}/test",
            "output": f"{PROCESSING_ROOT}/evaluation",
        },
    )
    if not step.metrics:
        raise InvalidSpecError(
            "evaluation.metrics",
            "required: metric name to a JSON path in the report, e.g. {mse: regression_metrics.mse.value}",
        )
    return step
