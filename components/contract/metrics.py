"""Metric definitions: regexes over a job's log lines, as SageMaker's ``MetricDefinitions``.

The final value of each metric is the last match, which is what SageMaker reports as
``FinalMetricDataList``; the same rule applies to every backend. Every match is kept too, as the
metric's series (its learning curve), each value at a step: the number after ``step`` or
``epoch`` on the same line when there is one (``epoch 3: loss=0.41``, ``step=200 loss=...``),
else the step after the metric's previous one (0 for its first).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from flywheel.components.errors import InvalidSpecError

# SageMaker's limits for MetricDefinitions.
MAX_METRIC_NAME_LENGTH = 255
MAX_REGEX_LENGTH = 500
# An explicit step on a metric's line: ``step 3``, ``step=3``, ``Epoch: 3``, ``epoch 3/10``.
_STEP = re.compile(r"\b(?:step|epoch)\b\s*[=:]?\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class MetricDefinition:
    """One metric: its name and a regex whose first group is the number."""

    name: str
    regex: str
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"metric_definitions[{self.name}]"
        if not self.name or len(self.name) > MAX_METRIC_NAME_LENGTH:
            raise InvalidSpecError(where, "name must be 1-255 characters")
        if len(self.regex) > MAX_REGEX_LENGTH:
            raise InvalidSpecError(where, f"regex is over {MAX_REGEX_LENGTH} characters")
        try:
            pattern = re.compile(self.regex)
        except re.error as error:
            raise InvalidSpecError(where, f"regex does not compile: {error}") from None
        if pattern.groups < 1:
            raise InvalidSpecError(where, "regex needs one capturing group around the number")
        object.__setattr__(self, "_pattern", pattern)

    def value_in(self, line: str) -> float | None:
        """The metric's value on this line, or None when the line does not report it."""
        match = self._pattern.search(line)
        if not match:
            return None
        try:
            value = float(match.group(1))
        except ValueError:
            return None
        return value if math.isfinite(value) else None

    def as_sagemaker(self) -> dict[str, str]:
        return {"Name": self.name, "Regex": self.regex}

    @classmethod
    def from_mapping(cls, raw: Mapping[str, str]) -> MetricDefinition:
        """Accept both our lower-case keys and SageMaker's ``Name``/``Regex``."""
        name = raw.get("name", raw.get("Name"))
        regex = raw.get("regex", raw.get("Regex"))
        if not isinstance(name, str) or not isinstance(regex, str):
            raise InvalidSpecError(
                "metric_definitions", f"each needs a name and a regex, got {raw!r}"
            )
        return cls(name=name, regex=regex)


def step_in(line: str) -> int | None:
    """The step or epoch a log line names, or None when it names none."""
    match = _STEP.search(line)
    return int(match.group(1)) if match else None


class MetricCollector:
    """Reads log lines as they stream; keeps each defined metric's last value and its series."""

    def __init__(self, definitions: Iterable[MetricDefinition]) -> None:
        self._definitions = tuple(definitions)
        self.final: dict[str, float] = {}
        # Metric name to its ``(step, value)`` pairs, in log order.
        self.series: dict[str, list[tuple[int, float]]] = {}

    def observe(self, line: str) -> None:
        for definition in self._definitions:
            value = definition.value_in(line)
            if value is not None:
                self.final[definition.name] = value
                points = self.series.setdefault(definition.name, [])
                step = step_in(line)
                if step is None:  # the step after the previous one, 0 for the first
                    step = points[-1][0] + 1 if points else 0
                points.append((step, value))
