"""Evaluation reports: the ``evaluation.json`` a processing script writes, read as metrics.

SageMaker Pipelines reads such a report with a ``PropertyFile`` and a ``JsonGet`` on a JSON path
(``regression_metrics.mse.value``); a condition on that value decides whether to register. This
module does the same: it finds the report, reads the value at a path, and flattens every number in
it into metrics for the Kubeflow UI.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from flywheel.components.errors import InvalidSpecError

REPORT_FILE = "evaluation.json"


def find_report(folder: Path, file_name: str = REPORT_FILE) -> Path:
    """``folder/file_name``, or the one file of that name anywhere below ``folder``."""
    direct = folder / file_name
    if direct.is_file():
        return direct
    found = sorted(folder.rglob(Path(file_name).name)) if folder.is_dir() else []
    if len(found) == 1:
        return found[0]
    if not found:
        raise InvalidSpecError("report", f"no {file_name} under {folder}: the script wrote none")
    names = ", ".join(str(path.relative_to(folder)) for path in found)
    raise InvalidSpecError("report", f"{len(found)} files named {file_name}: {names}; give one")


def load_report(path: Path) -> Mapping[str, Any]:
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InvalidSpecError("report", f"{path} is not a JSON document: {error}") from None
    if not isinstance(report, Mapping):
        raise InvalidSpecError("report", f"{path} must hold a JSON object")
    return report


def value_at(report: Mapping[str, Any], json_path: str) -> float:
    """The number at a dotted path, as SageMaker's ``JsonGet`` reads ``regression_metrics.mse.value``.

    A missing key is refused naming the path so far and the keys that exist there.
    """
    node: Any = report
    walked: list[str] = []
    for key in json_path.split("."):
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, Mapping) and key in node:
            node = node[key]
        else:
            where = ".".join(walked) or "the top level"
            have = sorted(node) if isinstance(node, Mapping) else type(node).__name__
            raise InvalidSpecError(
                "json_path", f"{json_path}: {where} has no {key!r}; it has {have}"
            )
        walked.append(key)
    if isinstance(node, bool) or not isinstance(node, int | float) or not math.isfinite(node):
        raise InvalidSpecError("json_path", f"{json_path} is {node!r}, not a finite number")
    return float(node)


def flat_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """Every finite number in the report by its dotted path, ``.value`` dropped (``regression_metrics.mse``)."""
    return dict(_numbers(report, ()))


def _numbers(node: Any, path: tuple[str, ...]) -> Iterator[tuple[str, float]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _numbers(value, (*path, str(key)))
    elif isinstance(node, int | float) and not isinstance(node, bool) and math.isfinite(node):
        shown = path[:-1] if path and path[-1] == "value" and len(path) > 1 else path
        yield ".".join(shown), float(node)
