"""A workload: the user's training script plus what Flywheel must know about it.

``workload.yaml`` sits next to the script and declares its hyperparameters (with types, so bad
values are refused before anything runs), its metric regexes, the objective the quality gate
compares, and the columns of its data. Swapping in your own model means writing this file.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flywheel.components.compute.backend import TrainingJobSpec
from flywheel.components.contract.channels import (
    CHANNEL_KEYS,
    DEFAULT_CHANNELS,
    ChannelLayout,
    parse_layout,
)
from flywheel.components.contract.keys import check_keys
from flywheel.components.contract.metrics import MetricDefinition
from flywheel.components.contract.scripts import ScriptStep, evaluation_of, preprocessing_of
from flywheel.components.contract.tuning import TuningSpec, tuning_of
from flywheel.components.data.bundles import fetch_bundle, is_bundle
from flywheel.components.errors import InvalidSpecError
from flywheel.components.monitoring.notify import NotifyTarget
from flywheel.components.monitoring.scores import OBJECTIVES
from flywheel.components.registry.local import validate_model_name

HYPERPARAMETER_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}
TASKS = ("regression", "classification")
GOALS = ("minimize", "maximize")
# The keys each level of workload.yaml may hold; anything else is a typo, refused with the nearest.
TOP_LEVEL_KEYS = (
    "name",
    "task",
    "source_dir",
    "entry_point",
    "data",
    "hyperparameters",
    "metric_definitions",
    "objective",
    "channels",
    "serving",
    "preprocessing",
    "evaluation",
    "framework",
    "dependencies",
    "tuning",
    "approval",
    "notify",
)
# Whether the quality gate's winner becomes champion at once, or waits for a person
# (``flywheel approve``); SageMaker's ModelApprovalStatus under both.
APPROVAL_MODES = ("auto", "manual")
DATA_KEYS = ("id_column", "feature_columns", "label_column")
HYPERPARAMETER_KEYS = ("type", "default", "minimum", "maximum", "choices", "help")
METRIC_DEFINITION_KEYS = ("name", "regex", "Name", "Regex")
OBJECTIVE_KEYS = ("metric", "goal")
SERVING_KEYS = (
    "content_type",
    "accept",
    "split_type",
    "batch_strategy",
    "entry_point",
    "source_dir",
    "dependencies",
)
# The framework whose serving container's default handlers serve the model (SageMaker's image
# names); none means sagemaker-inference's generic defaults.
FRAMEWORKS = ("sklearn", "xgboost", "pytorch")
# What batch scoring may send and ask for: the content types of SageMaker's default handlers.
SERVING_CONTENT_TYPES = (
    "text/csv",
    "application/json",
    "application/x-npy",
    "application/jsonlines",
)
# Batch transform's SplitType and BatchStrategy, SageMaker's spellings, the default first. RecordIO
# and TFRecord are not offered: scoring writes its request files as text.
SPLIT_TYPES = ("None", "Line")
BATCH_STRATEGIES = ("MultiRecord", "SingleRecord")
# A binary body cannot be cut at newlines nor its responses joined by them.
BINARY_CONTENT_TYPES = ("application/x-npy",)


@dataclass(frozen=True)
class HyperparameterSpec:
    name: str
    type: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] = ()
    help: str = ""

    def coerce(self, value: object) -> Any:
        """Turn a command-line string or a JSON value into this hyperparameter's type, or refuse."""
        field = f"hyperparameters.{self.name}"
        expected = HYPERPARAMETER_TYPES[self.type]
        coerced = _coerce(value, expected)
        if coerced is None:
            raise InvalidSpecError(field, f"expected {self.type}, got {value!r}")
        if self.choices and coerced not in self.choices:
            raise InvalidSpecError(field, f"{coerced!r} is not one of {list(self.choices)}")
        if self.minimum is not None and coerced < self.minimum:
            raise InvalidSpecError(field, f"{coerced} is below the minimum {self.minimum}")
        if self.maximum is not None and coerced > self.maximum:
            raise InvalidSpecError(field, f"{coerced} is above the maximum {self.maximum}")
        return coerced


def _coerce(value: object, expected: type) -> Any:
    if expected is bool:
        if isinstance(value, bool):
            return value
        lowered = str(value).strip().lower()
        return {"true": True, "false": False}.get(lowered)
    if expected is str:
        return value if isinstance(value, str) else None
    if isinstance(value, bool):
        return None
    if expected is int:
        if isinstance(value, int):
            return value
        # KFP passes dict parameters through protobuf Struct, which turns every number into a float.
        if isinstance(value, float):
            return int(value) if value.is_integer() else None
        try:
            return int(str(value).strip())
        except ValueError:
            return None
    try:
        number = float(value) if isinstance(value, int | float | str) else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


@dataclass(frozen=True)
class DataColumns:
    """Which columns of the data are the model's input, its label and each row's id."""

    features: tuple[str, ...]
    label: str
    id: str

    @property
    def required(self) -> tuple[str, ...]:
        return (self.id, *self.features, self.label)


@dataclass(frozen=True)
class Serving:
    """How batch scoring calls the script's handlers, in SageMaker batch transform's terms.

    ``content_type`` is what is sent, ``accept`` what is asked back; ``split_type`` ``Line`` cuts
    a request file into one record per line, and ``batch_strategy`` sends each record alone
    (``SingleRecord``) or as many as fit ``MaxPayloadInMB`` (``MultiRecord``).
    """

    content_type: str = "text/csv"
    accept: str = "text/csv"
    split_type: str = "None"
    batch_strategy: str = "MultiRecord"
    # The inference code, when it is not the training script (SageMaker SDK's ``Model(
    # entry_point="inference.py", source_dir=..., dependencies=[...])``): empty means the
    # workload's own entry point and source folder.
    entry_point: str = ""
    source_dir: Path | None = None
    # Extra folders shipped beside the code, each as a folder of its own name (the SDK's
    # ``dependencies``).
    dependencies: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Workload:
    name: str
    task: str
    source_dir: Path
    entry_point: str
    columns: DataColumns
    hyperparameters: Mapping[str, HyperparameterSpec]
    metric_definitions: tuple[MetricDefinition, ...]
    objective_metric: str
    objective_goal: str
    path: Path
    channels: tuple[ChannelLayout, ...] = ()
    # None when the workload says ``serving: false``: a training-only workload, whose model is
    # trained and registered but never scored.
    serving: Serving | None = Serving()
    # The user's own processing scripts (``contract.scripts``): run before the split, and in place
    # of the built-in evaluation.
    preprocessing: ScriptStep | None = None
    evaluation: ScriptStep | None = None
    framework: str | None = None
    # Folders shipped with the training code, each under its own name (the SDK's
    # ``Estimator(dependencies=[...])``); the serving code gets them too unless it names its own.
    dependencies: tuple[Path, ...] = ()
    # The ``tuning`` section (``contract.tuning``): None when the workload declares no search.
    tuning: TuningSpec | None = None
    # ``manual``: the gate's winner waits as PendingManualApproval and ``notify`` is told.
    approval: str = "auto"
    # Who hears of a version waiting for approval: an SNS topic, a webhook, or both.
    notify: NotifyTarget = field(default_factory=NotifyTarget)

    @property
    def serving_dependencies(self) -> tuple[Path, ...]:
        """The serving code's dependencies: ``serving.dependencies``, else the training code's."""
        if self.serving is None:
            return ()
        return self.serving.dependencies or self.dependencies

    @property
    def serving_source_dir(self) -> Path:
        """The folder of the inference code: ``serving.source_dir``, else the training code's."""
        return (self.serving.source_dir if self.serving else None) or self.source_dir

    @property
    def serving_entry_point(self) -> str:
        """The inference script: ``serving.entry_point``, else the training script."""
        return (self.serving.entry_point if self.serving else "") or self.entry_point

    @property
    def scores(self) -> bool:
        """Whether the pipeline can measure the model: it is served, or an evaluation script runs."""
        return self.serving is not None or self.evaluation is not None

    def training_job(
        self,
        *,
        job_name: str,
        channels: Mapping[str, str],
        hyperparameters: Mapping[str, Any],
        output_location: str,
        source_dir: Path | None = None,
    ) -> TrainingJobSpec:
        """A job that runs this workload's script on ``channels`` (hyperparameters already resolved)."""
        declared = {layout.name: layout.content_type for layout in self.channels}
        return TrainingJobSpec(
            job_name=job_name,
            source_dir=str(source_dir or self.source_dir),
            entry_point=self.entry_point,
            channels=dict(channels),
            content_types={name: declared.get(name, "") for name in channels},
            hyperparameters=hyperparameters,
            output_location=output_location,
            metric_definitions=self.metric_definitions,
        )

    def resolve_hyperparameters(self, overrides: Mapping[str, object]) -> dict[str, Any]:
        """Defaults overlaid with ``overrides``; unknown names and bad values are refused."""
        check_keys(
            overrides, tuple(sorted(self.hyperparameters)), "hyperparameters.", "hyperparameter"
        )
        resolved = {name: spec.default for name, spec in self.hyperparameters.items()}
        for name, value in overrides.items():
            resolved[name] = self.hyperparameters[name].coerce(value)
        return resolved


def _require(raw: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = raw.get(key)
    if not isinstance(value, kind):
        raise InvalidSpecError(f"{where}{key}", f"required, a {kind.__name__}; got {value!r}")
    return value


def _mapping(raw: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
    """An optional section: a mapping, or empty when absent."""
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise InvalidSpecError(f"{where}{key}", f"must be a mapping, got {value!r}")
    return value


def channels_of(raw: Mapping[str, Any], columns: DataColumns) -> tuple[ChannelLayout, ...]:
    """The declared channel layouts, or the default ``train`` and ``test``."""
    declared = _mapping(raw, "channels") or DEFAULT_CHANNELS
    layouts = []
    for name, settings in declared.items():
        settings = settings if settings is not None else {}
        if not isinstance(settings, Mapping):
            raise InvalidSpecError(f"channels.{name}", f"must be a mapping, got {settings!r}")
        check_keys(settings, CHANNEL_KEYS, f"channels.{name}.")
        layouts.append(parse_layout(str(name), settings, columns))
    return tuple(layouts)


def _serving_choice(serving: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = serving.get(key, allowed[0])
    if value not in allowed:
        # A bare ``null`` or ``~`` is YAML's "no value", not SageMaker's string "None".
        shown = "null (no value)" if value is None else repr(value)
        raise InvalidSpecError(f"serving.{key}", f"{shown} is not one of {list(allowed)}")
    return value


def _serving_code(
    serving: Mapping[str, Any], workload_dir: Path, source_dir: Path
) -> tuple[str, Path | None, tuple[Path, ...]]:
    """``serving.entry_point``, ``source_dir`` and ``dependencies``, each checked to exist."""
    folder = None
    if "source_dir" in serving:
        folder = (workload_dir / str(serving["source_dir"])).resolve()
        if not folder.is_dir():
            raise InvalidSpecError("serving.source_dir", f"{folder} is not a folder")
    entry_point = serving.get("entry_point", "")
    if not isinstance(entry_point, str):
        raise InvalidSpecError("serving.entry_point", f"must be a file name, got {entry_point!r}")
    if entry_point and not ((folder or source_dir) / entry_point).is_file():
        raise InvalidSpecError(
            "serving.entry_point", f"{entry_point} is not a file in {folder or source_dir}"
        )
    return entry_point, folder, dependencies_of(serving, workload_dir, "serving.")


def dependencies_of(
    section: Mapping[str, Any], workload_dir: Path, where: str = ""
) -> tuple[Path, ...]:
    """``dependencies``: folders shipped beside the code, as the SageMaker SDK's ``dependencies=``."""
    listed = section.get("dependencies", [])
    if not isinstance(listed, list) or not all(isinstance(d, str) for d in listed):
        raise InvalidSpecError(f"{where}dependencies", f"must be a list of folders, got {listed!r}")
    dependencies = tuple((workload_dir / d).resolve() for d in listed)
    for index, dependency in enumerate(dependencies):
        if not dependency.is_dir():
            raise InvalidSpecError(f"{where}dependencies[{index}]", f"{dependency} is not a folder")
    names = [d.name for d in dependencies]
    if len(set(names)) != len(names):
        raise InvalidSpecError(f"{where}dependencies", f"two folders share a name: {names}")
    return dependencies


def serving_of(raw: Mapping[str, Any], workload_dir: Path, source_dir: Path) -> Serving | None:
    """How batch scoring calls the script's handlers, checked as one whole; None for
    ``serving: false`` (a training-only workload).

    With ``split_type: None`` SageMaker sends each file whole and ``batch_strategy`` has no effect
    (its API: "to enable the batch strategy, you must set SplitType"), so the pair is accepted and
    each file is one request, as SageMaker does.
    """
    if raw.get("serving") is False:
        return None
    serving = _mapping(raw, "serving")
    check_keys(serving, SERVING_KEYS, "serving.")
    entry_point, folder, dependencies = _serving_code(serving, workload_dir, source_dir)
    chosen = Serving(
        content_type=_serving_choice(serving, "content_type", SERVING_CONTENT_TYPES),
        accept=_serving_choice(serving, "accept", SERVING_CONTENT_TYPES),
        split_type=_serving_choice(serving, "split_type", SPLIT_TYPES),
        batch_strategy=_serving_choice(serving, "batch_strategy", BATCH_STRATEGIES),
        entry_point=entry_point,
        source_dir=folder,
        dependencies=dependencies,
    )
    if chosen.split_type == "Line":
        for key in ("content_type", "accept"):
            value = getattr(chosen, key)
            if value in BINARY_CONTENT_TYPES:
                raise InvalidSpecError(
                    f"serving.{key}",
                    f"{value} is binary: it cannot be cut or assembled by lines; "
                    "use split_type: None or a text content type",
                )
    return chosen


def objective_of(
    raw: Mapping[str, Any], task: str, evaluation: ScriptStep | None = None
) -> tuple[str, str]:
    """The objective's metric and goal, checked against the metrics ``task``'s evaluation produces.

    The goal defaults to the metric's own direction; a goal against it (``r2`` minimised) is refused.
    With an evaluation script, the metrics are the ones its report gives, and the goal is required.
    """
    objective = _require(raw, "objective", Mapping, "")
    check_keys(objective, OBJECTIVE_KEYS, "objective.")
    metric = _require(objective, "metric", str, "objective.")
    if evaluation is not None:
        if metric not in evaluation.metrics:
            raise InvalidSpecError(
                "objective.metric",
                f"{metric!r} is not one of the evaluation script's metrics {sorted(evaluation.metrics)}",
            )
        goal = objective.get("goal")
        if goal not in GOALS:
            raise InvalidSpecError(
                "objective.goal", f"{goal!r} is not one of {list(GOALS)} (required with evaluation)"
            )
        return metric, goal
    produced = OBJECTIVES[task]
    if metric not in produced:
        raise InvalidSpecError(
            "objective.metric",
            f"a {task} task is evaluated by {', '.join(produced)}; {metric!r} is not one of them",
        )
    goal = objective.get("goal", produced[metric])
    if goal not in GOALS:
        raise InvalidSpecError("objective.goal", f"{goal!r} is not one of {list(GOALS)}")
    if goal != produced[metric]:
        raise InvalidSpecError(
            "objective.goal",
            f"{metric} is better when it is lower or higher: use {produced[metric]}",
        )
    return metric, goal


def _hyperparameter(name: str, raw: Any) -> HyperparameterSpec:
    where = f"hyperparameters.{name}"
    if not isinstance(raw, Mapping):
        raise InvalidSpecError(where, "must be a mapping with type and default")
    check_keys(raw, HYPERPARAMETER_KEYS, f"{where}.")
    kind = raw.get("type")
    if kind not in HYPERPARAMETER_TYPES:
        raise InvalidSpecError(
            f"{where}.type", f"{kind!r} is not one of {list(HYPERPARAMETER_TYPES)}"
        )
    spec = HyperparameterSpec(
        name=name,
        type=kind,
        default=None,
        minimum=raw.get("minimum"),
        maximum=raw.get("maximum"),
        choices=tuple(raw.get("choices", ())),
        help=str(raw.get("help", "")),
    )
    return HyperparameterSpec(**{**spec.__dict__, "default": spec.coerce(raw.get("default"))})


BUILTIN_PREFIX = "builtin:"
# The example workloads that ship inside the package, by the name after ``builtin:``.
BUILTIN_WORKLOADS = {
    "qsar": "qsar/workload.yaml",
    "qsar-torch": "qsar/workload-torch.yaml",
    "qsar-processing": "qsar/workload-processing.yaml",
    "qsar-tuning": "qsar/workload-tuning.yaml",
}


def examples_dir() -> Path:
    """The folder the example workloads are installed in (``examples/`` in a checkout)."""
    spec = importlib.util.find_spec("flywheel.examples")
    if spec is None or not spec.submodule_search_locations:
        raise InvalidSpecError("workload", "the packaged examples are missing from this install")
    return Path(next(iter(spec.submodule_search_locations)))


def is_builtin(reference: str | Path) -> bool:
    """Whether ``reference`` names a packaged example rather than a path."""
    return str(reference).startswith(BUILTIN_PREFIX)


def workload_file(reference: str | Path) -> Path:
    """The ``workload.yaml`` a reference names: ``builtin:<name>``, a code bundle in S3
    (``s3://.../bundle-<sha256>.tar.gz``, fetched and verified), a file, or its folder.

    A path is relative to the current folder, as a user expects of any command-line path.
    """
    text = str(reference)
    if is_bundle(text):
        return fetch_bundle(text)
    if is_builtin(text):
        name = text.removeprefix(BUILTIN_PREFIX)
        if name not in BUILTIN_WORKLOADS:
            raise InvalidSpecError(
                "workload",
                f"{text} is not one of {[BUILTIN_PREFIX + n for n in BUILTIN_WORKLOADS]}",
            )
        return examples_dir() / BUILTIN_WORKLOADS[name]
    path = Path(reference)
    return path / "workload.yaml" if path.is_dir() else path


def load_workload(path: str | Path) -> Workload:
    """Read and check ``workload.yaml``; every problem names its field."""
    path = workload_file(path)
    if path.is_dir():
        path = path / "workload.yaml"
    if not path.is_file():
        raise InvalidSpecError("workload", f"{path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise InvalidSpecError("workload", f"{path} is not valid YAML: {error}") from None
    if not isinstance(raw, Mapping):
        raise InvalidSpecError("workload", f"{path} must hold a mapping")
    check_keys(raw, TOP_LEVEL_KEYS)
    name = validate_model_name(_require(raw, "name", str, ""))
    task = raw.get("task", "regression")
    if task not in TASKS:
        raise InvalidSpecError("task", f"{task!r} is not one of {list(TASKS)}")
    source_dir = (path.parent / raw.get("source_dir", ".")).resolve()
    entry_point = _require(raw, "entry_point", str, "")
    if not (source_dir / entry_point).is_file():
        raise InvalidSpecError("entry_point", f"{entry_point} is not a file in {source_dir}")
    data = _require(raw, "data", Mapping, "")
    check_keys(data, DATA_KEYS, "data.")
    features = _require(data, "feature_columns", list, "data.")
    columns = DataColumns(
        features=tuple(str(c) for c in features),
        label=_require(data, "label_column", str, "data."),
        id=_require(data, "id_column", str, "data."),
    )
    hyperparameters = {
        n: _hyperparameter(n, spec) for n, spec in _mapping(raw, "hyperparameters").items()
    }
    preprocessing = preprocessing_of(raw, path.parent, source_dir)
    evaluation = evaluation_of(raw, path.parent, source_dir)
    serving = serving_of(raw, path.parent, source_dir)
    framework = raw.get("framework")
    if framework is not None and framework not in FRAMEWORKS:
        raise InvalidSpecError("framework", f"{framework!r} is not one of {list(FRAMEWORKS)}")
    if serving is None and evaluation is None:
        # Training only: nothing measures the model, so there is no objective to compare.
        if "objective" in raw:
            raise InvalidSpecError(
                "objective", "serving: false with no evaluation script measures nothing to compare"
            )
        objective_metric, objective_goal = "", ""
    else:
        objective_metric, objective_goal = objective_of(raw, task, evaluation)
    definitions = raw.get("metric_definitions", [])
    if not isinstance(definitions, list):
        raise InvalidSpecError("metric_definitions", f"must be a list, got {definitions!r}")
    for index, definition in enumerate(definitions):
        if isinstance(definition, Mapping):
            check_keys(definition, METRIC_DEFINITION_KEYS, f"metric_definitions[{index}].")
    metric_definitions = tuple(MetricDefinition.from_mapping(m) for m in definitions)
    approval = raw.get("approval", "auto")
    if approval not in APPROVAL_MODES:
        raise InvalidSpecError("approval", f"{approval!r} is not one of {list(APPROVAL_MODES)}")
    return Workload(
        name=name,
        task=task,
        source_dir=source_dir,
        entry_point=entry_point,
        columns=columns,
        hyperparameters=hyperparameters,
        metric_definitions=metric_definitions,
        objective_metric=objective_metric,
        objective_goal=objective_goal,
        path=path.resolve(),
        channels=channels_of(raw, columns),
        serving=serving,
        preprocessing=preprocessing,
        evaluation=evaluation,
        framework=framework,
        dependencies=dependencies_of(raw, path.parent),
        tuning=tuning_of(raw, hyperparameters, (m.name for m in metric_definitions)),
        approval=approval,
        notify=NotifyTarget.from_config(_mapping(raw, "notify")),
    )
