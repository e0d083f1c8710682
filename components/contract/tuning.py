"""The workload's ``tuning`` section: one search, the same on every backend.

SageMaker Automatic Model Tuning runs it as one ``CreateHyperParameterTuningJob``; locally and on
EKS, Optuna suggests each round's trials. Both read this one spec, so it is checked here, at load
time, against the strictest of them: SageMaker's limits (from botocore's service model where it
states them, and from the Automatic Model Tuning guide where only the guide does). A bad section
is refused in one line naming its field, before anything runs or is written.

.. code-block:: yaml

    tuning:
      objective: {metric: test_rmse, type: Minimize}   # a metric_definitions name
      strategy: Bayesian                               # Bayesian | Random | Hyperband | Grid
      ranges:
        n_estimators: {type: integer, min: 50, max: 800, scaling: Logarithmic}
        min_samples_leaf: {type: integer, min: 1, max: 8}
        max_features: {type: categorical, values: [sqrt, log2]}
      max_jobs: 20
      max_parallel_jobs: 2
      early_stopping: Off                              # Off | Auto
      random_seed: 7
      warm_start: {parents: [tune-qsar-1a2b3c4d5e], type: IdenticalDataAndAlgorithm}
      hyperband: {min_resource: 1, max_resource: 30}   # Hyperband only: epochs per trial
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flywheel.components.contract.keys import check_keys
from flywheel.components.errors import InvalidSpecError

if TYPE_CHECKING:
    from flywheel.components.contract.workload import HyperparameterSpec

STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")
OBJECTIVE_TYPES = ("Maximize", "Minimize")
SCALINGS = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
EARLY_STOPPING = ("Off", "Auto")
WARM_START_TYPES = ("IdenticalDataAndAlgorithm", "TransferLearning")
RANGE_TYPES = ("integer", "continuous", "categorical")
# The workload's hyperparameter type each kind of range searches.
RANGE_HYPERPARAMETER_TYPES = {"integer": ("int",), "continuous": ("float",)}

TUNING_KEYS = (
    "objective",
    "strategy",
    "ranges",
    "max_jobs",
    "max_parallel_jobs",
    "early_stopping",
    "random_seed",
    "warm_start",
    "hyperband",
)
OBJECTIVE_KEYS = ("metric", "type")
NUMERIC_RANGE_KEYS = ("type", "min", "max", "scaling")
CATEGORICAL_RANGE_KEYS = ("type", "values")
WARM_START_KEYS = ("parents", "type")
HYPERBAND_KEYS = ("min_resource", "max_resource")
# SageMaker Hyperband infers MaxResource from a static hyperparameter of one of these names when
# none is given (HyperbandStrategyConfig); without one, the service refuses the job.
HYPERBAND_EPOCH_NAMES = ("epochs", "numepochs", "n-epochs", "n_epochs", "num_epochs")
HYPERBAND_MAX_RESOURCE = 20_000


# SageMaker's limits, as botocore's service model states them (tests/tuning hold the two together;
# loading the model here would cost every task that reads a workload a fifth of a second):
# 30 ranges of each kind, and "the sum of the number of hyperparameters for all the ranges can't
# exceed the maximum" (ParameterRanges), so 30 in all; 30 values per categorical range
# (ParameterValues); 5 parent jobs for a warm start; tuning job names of 32 characters.
MAX_RANGES = 30
MAX_CATEGORICAL_VALUES = 30
MAX_WARM_START_PARENTS = 5
MAX_TUNING_JOB_NAME = 32


@dataclass(frozen=True)
class ParameterRange:
    """One searched hyperparameter: ``integer`` or ``continuous`` between ``min`` and ``max`` on
    ``scaling``, or ``categorical`` over ``values`` (kept as the typed values the script takes)."""

    name: str
    type: str
    min: float | None = None
    max: float | None = None
    scaling: str = "Auto"
    values: tuple[Any, ...] = ()

    @property
    def is_numeric(self) -> bool:
        return self.type != "categorical"


@dataclass(frozen=True)
class WarmStart:
    """Earlier tuning jobs whose trials seed this search (SageMaker's WarmStartConfig)."""

    parents: tuple[str, ...]
    type: str


@dataclass(frozen=True)
class TuningSpec:
    """A checked ``tuning`` section. ``max_jobs`` is the whole search's trial count; Grid's is
    the number of combinations when the section leaves it out."""

    objective_metric: str
    objective_type: str
    strategy: str
    ranges: tuple[ParameterRange, ...]
    max_jobs: int
    max_parallel_jobs: int
    early_stopping: str = "Off"
    random_seed: int | None = None
    warm_start: WarmStart | None = None
    min_resource: int | None = None
    max_resource: int | None = None

    @property
    def maximize(self) -> bool:
        return self.objective_type == "Maximize"

    @property
    def prunes(self) -> bool:
        """Whether trials may be stopped early: Hyperband, or ``early_stopping: Auto``."""
        return self.strategy == "Hyperband" or self.early_stopping == "Auto"

    @property
    def tuned(self) -> frozenset[str]:
        """The hyperparameters the search sets; every other one keeps its static value."""
        return frozenset(r.name for r in self.ranges)

    def grid_size(self) -> int:
        """How many distinct combinations the categorical ranges make."""
        return math.prod(len(r.values) for r in self.ranges)


def encode_value(value: Any) -> str:
    """A hyperparameter value as the SageMaker SDK sends it: JSON, so ``"sqrt"`` stays a string
    and ``512`` an integer when the training toolkit decodes it (``sdk_hyperparameters``)."""
    return json.dumps(value)


def decode_value(text: str) -> Any:
    """The typed value of a SageMaker hyperparameter string; a bare string as it is."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidSpecError(where, f"must be a mapping, got {value!r}")
    return value


def _choice(value: Any, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise InvalidSpecError(where, f"{value!r} is not one of {list(allowed)}")
    return value


def _whole(value: Any, where: str, minimum: int) -> int:
    # KFP's protobuf Struct turns every number into a float: 20 arrives as 20.0.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpecError(where, f"expected a whole number, got {value!r}")
    if value < minimum:
        raise InvalidSpecError(where, f"{value} is below the minimum {minimum}")
    return value


def _objective(raw: Any, metrics: tuple[str, ...]) -> tuple[str, str]:
    objective = _mapping(raw, "tuning.objective")
    check_keys(objective, OBJECTIVE_KEYS, "tuning.objective.")
    metric = objective.get("metric")
    if metric not in metrics:
        # SageMaker reads the objective from the log with the metric definitions' regexes, and
        # Optuna's trials are told the same values: a metric no regex reads is never seen.
        raise InvalidSpecError(
            "tuning.objective.metric",
            f"{metric!r} is not one of the workload's metric_definitions {list(metrics)}",
        )
    return metric, _choice(objective.get("type"), OBJECTIVE_TYPES, "tuning.objective.type")


def _bound(raw: Mapping[str, Any], key: str, where: str, hyperparameter: HyperparameterSpec) -> Any:
    if key not in raw:
        raise InvalidSpecError(f"{where}.{key}", "required for an integer or continuous range")
    try:
        # The workload's own check: its type, and the minimum and maximum it declares.
        return hyperparameter.coerce(raw[key])
    except InvalidSpecError as error:
        raise InvalidSpecError(f"{where}.{key}", error.problem) from None


def _scaling(kind: str, scaling: str, low: float, high: float, where: str) -> None:
    if scaling == "Logarithmic" and low <= 0:
        raise InvalidSpecError(f"{where}.min", f"Logarithmic scaling needs min > 0, got {low}")
    if scaling == "ReverseLogarithmic":
        if kind == "integer":
            raise InvalidSpecError(
                f"{where}.scaling", "ReverseLogarithmic is for continuous ranges only"
            )
        if not 0 <= low < high < 1:
            raise InvalidSpecError(
                f"{where}.min", f"ReverseLogarithmic needs 0 <= min < max < 1, got {low}-{high}"
            )


def _range(
    name: str, raw: Any, hyperparameters: Mapping[str, HyperparameterSpec]
) -> ParameterRange:
    where = f"tuning.ranges.{name}"
    settings = _mapping(raw, where)
    if name not in hyperparameters:
        raise InvalidSpecError(
            where, f"the workload declares no such hyperparameter; have {sorted(hyperparameters)}"
        )
    hyperparameter = hyperparameters[name]
    kind = _choice(settings.get("type"), RANGE_TYPES, f"{where}.type")
    if kind == "categorical":
        check_keys(settings, CATEGORICAL_RANGE_KEYS, f"{where}.")
        listed = settings.get("values")
        if not isinstance(listed, list) or not listed:
            raise InvalidSpecError(f"{where}.values", f"must be a non-empty list, got {listed!r}")
        if len(listed) > MAX_CATEGORICAL_VALUES:
            raise InvalidSpecError(
                f"{where}.values",
                f"has {len(listed)} values; SageMaker allows at most {MAX_CATEGORICAL_VALUES}",
            )
        values = []
        for index, value in enumerate(listed):
            try:
                values.append(hyperparameter.coerce(value))
            except InvalidSpecError as error:
                raise InvalidSpecError(f"{where}.values[{index}]", error.problem) from None
        if len(set(map(encode_value, values))) != len(values):
            raise InvalidSpecError(f"{where}.values", f"lists a value twice: {listed}")
        return ParameterRange(name, kind, values=tuple(values))
    check_keys(settings, NUMERIC_RANGE_KEYS, f"{where}.")
    if hyperparameter.type not in RANGE_HYPERPARAMETER_TYPES[kind]:
        raise InvalidSpecError(
            f"{where}.type",
            f"{name} is declared {hyperparameter.type}; an {kind} range needs "
            f"{' or '.join(RANGE_HYPERPARAMETER_TYPES[kind])} (a categorical range lists values)",
        )
    if hyperparameter.choices:
        raise InvalidSpecError(
            f"{where}.type",
            f"{name} takes only {list(hyperparameter.choices)}: use a categorical range of them",
        )
    low, high = (
        _bound(settings, "min", where, hyperparameter),
        _bound(settings, "max", where, hyperparameter),
    )
    if not low < high:
        raise InvalidSpecError(f"{where}.max", f"must be above min ({low}), got {high}")
    scaling = _choice(settings.get("scaling", "Auto"), SCALINGS, f"{where}.scaling")
    _scaling(kind, scaling, low, high, where)
    return ParameterRange(name, kind, min=low, max=high, scaling=scaling)


def _ranges(
    raw: Any, hyperparameters: Mapping[str, HyperparameterSpec]
) -> tuple[ParameterRange, ...]:
    ranges = _mapping(raw, "tuning.ranges")
    if not ranges:
        raise InvalidSpecError("tuning.ranges", "name at least one hyperparameter to search")
    if len(ranges) > MAX_RANGES:
        raise InvalidSpecError(
            "tuning.ranges",
            f"has {len(ranges)} ranges; SageMaker allows at most {MAX_RANGES} in all",
        )
    return tuple(_range(str(name), settings, hyperparameters) for name, settings in ranges.items())


def _warm_start(raw: Any) -> WarmStart:
    settings = _mapping(raw, "tuning.warm_start")
    check_keys(settings, WARM_START_KEYS, "tuning.warm_start.")
    parents = settings.get("parents")
    if (
        not isinstance(parents, list)
        or not parents
        or not all(isinstance(p, str) and p for p in parents)
    ):
        raise InvalidSpecError(
            "tuning.warm_start.parents", f"must list tuning job names, got {parents!r}"
        )
    if len(parents) > MAX_WARM_START_PARENTS:
        raise InvalidSpecError(
            "tuning.warm_start.parents",
            f"has {len(parents)} jobs; SageMaker allows at most {MAX_WARM_START_PARENTS}",
        )
    for index, parent in enumerate(parents):
        if len(parent) > MAX_TUNING_JOB_NAME:
            raise InvalidSpecError(
                f"tuning.warm_start.parents[{index}]",
                f"{parent!r} is {len(parent)} characters; tuning job names are at most "
                f"{MAX_TUNING_JOB_NAME}",
            )
    kind = _choice(settings.get("type"), WARM_START_TYPES, "tuning.warm_start.type")
    return WarmStart(tuple(parents), kind)


def _early_stopping(raw: Any) -> str:
    # YAML 1.1 reads a bare ``Off`` as false: ``early_stopping: Off`` means the string.
    return _choice("Off" if raw is False else raw, EARLY_STOPPING, "tuning.early_stopping")


def _hyperband(
    raw: Any, strategy: str, hyperparameters: Mapping[str, HyperparameterSpec]
) -> tuple[int | None, int | None]:
    if raw is None:
        if strategy == "Hyperband" and not set(HYPERBAND_EPOCH_NAMES) & set(hyperparameters):
            raise InvalidSpecError(
                "tuning.hyperband.max_resource",
                "Hyperband needs the most epochs a trial may run: set it, or declare a "
                f"hyperparameter named one of {list(HYPERBAND_EPOCH_NAMES)}",
            )
        return None, None
    if strategy != "Hyperband":
        raise InvalidSpecError("tuning.hyperband", f"only for strategy Hyperband, not {strategy}")
    settings = _mapping(raw, "tuning.hyperband")
    check_keys(settings, HYPERBAND_KEYS, "tuning.hyperband.")
    low = _whole(settings.get("min_resource", 1), "tuning.hyperband.min_resource", 1)
    high = _whole(settings.get("max_resource"), "tuning.hyperband.max_resource", 1)
    if high > HYPERBAND_MAX_RESOURCE:
        raise InvalidSpecError(
            "tuning.hyperband.max_resource", f"{high} is above SageMaker's {HYPERBAND_MAX_RESOURCE}"
        )
    if low > high:
        raise InvalidSpecError(
            "tuning.hyperband.min_resource", f"{low} is above max_resource ({high})"
        )
    return low, high


def _max_jobs(raw: Mapping[str, Any], strategy: str, ranges: tuple[ParameterRange, ...]) -> int:
    if strategy != "Grid":
        return _whole(raw.get("max_jobs"), "tuning.max_jobs", 1)
    # Grid runs every combination once; SageMaker counts them itself and refuses a max_jobs that
    # differs (Automatic Model Tuning guide, "Grid search").
    numeric = [r.name for r in ranges if r.is_numeric]
    if numeric:
        raise InvalidSpecError(
            f"tuning.ranges.{numeric[0]}.type",
            "Grid searches categorical ranges only; list the values to try",
        )
    combinations = math.prod(len(r.values) for r in ranges)
    if "max_jobs" in raw:
        given = _whole(raw["max_jobs"], "tuning.max_jobs", 1)
        if given != combinations:
            raise InvalidSpecError(
                "tuning.max_jobs",
                f"Grid runs each of the {combinations} combinations once; leave max_jobs out or "
                f"set it to {combinations}",
            )
    return combinations


def tuning_of(
    raw: Mapping[str, Any],
    hyperparameters: Mapping[str, HyperparameterSpec],
    metric_names: Iterable[str],
) -> TuningSpec | None:
    """The workload's ``tuning`` section checked whole, or None when it has none."""
    if raw.get("tuning") is None:
        return None
    section = _mapping(raw["tuning"], "tuning")
    check_keys(section, TUNING_KEYS, "tuning.")
    metric, objective_type = _objective(section.get("objective"), tuple(metric_names))
    strategy = _choice(section.get("strategy", "Bayesian"), STRATEGIES, "tuning.strategy")
    ranges = _ranges(section.get("ranges"), hyperparameters)
    max_jobs = _max_jobs(section, strategy, ranges)
    parallel = _whole(section.get("max_parallel_jobs", 1), "tuning.max_parallel_jobs", 1)
    if parallel > max_jobs:
        raise InvalidSpecError(
            "tuning.max_parallel_jobs", f"{parallel} is above max_jobs ({max_jobs})"
        )
    early_stopping = _early_stopping(section.get("early_stopping", "Off"))
    if strategy == "Hyperband" and early_stopping != "Off":
        # "Because the Hyperband strategy has its own advanced internal early stopping
        # mechanism, TrainingJobEarlyStoppingType must be OFF to use Hyperband" (SageMaker API).
        raise InvalidSpecError(
            "tuning.early_stopping", "must be Off with Hyperband, which stops trials itself"
        )
    seed = section.get("random_seed")
    if seed is not None:
        seed = _whole(seed, "tuning.random_seed", 0)
    warm_start = _warm_start(section["warm_start"]) if "warm_start" in section else None
    if warm_start is not None and strategy == "Grid":
        raise InvalidSpecError("tuning.warm_start", "Grid runs every combination: nothing to warm")
    min_resource, max_resource = _hyperband(section.get("hyperband"), strategy, hyperparameters)
    return TuningSpec(
        objective_metric=metric,
        objective_type=objective_type,
        strategy=strategy,
        ranges=ranges,
        max_jobs=max_jobs,
        max_parallel_jobs=parallel,
        early_stopping=early_stopping,
        random_seed=seed,
        warm_start=warm_start,
        min_resource=min_resource,
        max_resource=max_resource,
    )
