"""The workload's ``tuning`` section: loaded into one typed spec, or refused in one line that names
the field, against SageMaker's limits, before anything runs or is written."""

from __future__ import annotations

import pytest

from flywheel.components.compute.sagemaker.validation import service_model
from flywheel.components.contract import tuning
from flywheel.components.contract.workload import load_workload
from flywheel.components.errors import InvalidSpecError

from .workloads import TUNING, write_workload


def test_a_tuning_section_loads_into_a_typed_spec(tmp_path):
    spec = load_workload(write_workload(tmp_path)).tuning

    assert spec is not None
    assert (spec.objective_metric, spec.objective_type, spec.strategy) == (
        "test_rmse",
        "Minimize",
        "Bayesian",
    )
    assert (spec.max_jobs, spec.max_parallel_jobs, spec.random_seed) == (12, 3, 11)
    assert spec.early_stopping == "Off", "YAML reads a bare Off as false; it means Off"
    by_name = {r.name: r for r in spec.ranges}
    assert (by_name["n_estimators"].min, by_name["n_estimators"].max) == (50, 800)
    assert by_name["momentum"].scaling == "ReverseLogarithmic"
    assert by_name["max_features"].values == ("sqrt", "log2")
    assert spec.tuned == {"n_estimators", "learning_rate", "momentum", "max_features"}


def test_a_workload_without_tuning_has_none(tmp_path):
    assert load_workload(write_workload(tmp_path, "")).tuning is None


def test_grid_runs_every_combination_when_max_jobs_is_left_out(tmp_path):
    section = """
tuning:
  objective: {metric: test_rmse, type: Minimize}
  strategy: Grid
  ranges:
    max_features: {type: categorical, values: [sqrt, log2, "1.0"]}
    n_bits: {type: categorical, values: [512, 1024]}
  max_parallel_jobs: 2
"""
    spec = load_workload(write_workload(tmp_path, section)).tuning

    assert spec.max_jobs == 6
    assert dict((r.name, r.values) for r in spec.ranges)["n_bits"] == (512, 1024)


def test_the_limits_are_the_ones_botocore_s_service_model_states():
    model = service_model("sagemaker")

    def most(shape: str) -> int:
        return model.shape_for(shape).metadata["max"]

    assert tuning.MAX_RANGES == most("IntegerParameterRanges") == most("CategoricalParameterRanges")
    assert most("ContinuousParameterRanges") == tuning.MAX_RANGES
    assert most("ParameterValues") == tuning.MAX_CATEGORICAL_VALUES
    assert most("ParentHyperParameterTuningJobs") == tuning.MAX_WARM_START_PARENTS
    assert most("HyperParameterTuningJobName") == tuning.MAX_TUNING_JOB_NAME
    assert set(tuning.STRATEGIES) == set(
        model.shape_for("HyperParameterTuningJobStrategyType").enum
    )
    assert set(tuning.SCALINGS) == set(model.shape_for("HyperParameterScalingType").enum)


def _replace(old: str, new: str) -> str:
    assert old in TUNING, old
    return TUNING.replace(old, new)


MANY_RANGES = "".join(f"    hp{i}: {{type: continuous, min: 0, max: 1}}\n" for i in range(31))
BAD_SECTIONS = {
    "objective metric no regex reads": (
        _replace("metric: test_rmse", "metric: rmse"),
        "tuning.objective.metric",
    ),
    "objective type": (_replace("type: Minimize", "type: minimise"), "tuning.objective.type"),
    "strategy": (_replace("strategy: Bayesian", "strategy: Evolution"), "tuning.strategy"),
    "undeclared hyperparameter": (
        _replace("    momentum:", "    dropout: {type: continuous, min: 0, max: 1}\n    momentum:"),
        "tuning.ranges.dropout",
    ),
    "typo in a range key": (
        _replace("min: 50, max: 800", "min: 50, maxi: 800"),
        "tuning.ranges.n_estimators.maxi",
    ),
    "logarithmic from zero": (
        _replace("min: 0.001, max: 0.3", "min: 0.0, max: 0.3"),
        "tuning.ranges.learning_rate.min",
    ),
    "reverse logarithmic reaching 1": (
        _replace("min: 0.5, max: 0.999", "min: 0.5, max: 1.0"),
        "tuning.ranges.momentum.min",
    ),
    "min above max": (
        _replace("min: 50, max: 800", "min: 800, max: 50"),
        "tuning.ranges.n_estimators.max",
    ),
    "outside the hyperparameter's own maximum": (
        _replace("min: 50, max: 800", "min: 50, max: 9000"),
        "tuning.ranges.n_estimators.max",
    ),
    "continuous range over an int": (
        _replace("n_estimators: {type: integer", "n_estimators: {type: continuous"),
        "tuning.ranges.n_estimators.type",
    ),
    "numeric range over a hyperparameter with choices": (
        _replace(
            "    momentum:", "    n_bits: {type: integer, min: 512, max: 4096}\n    momentum:"
        ),
        "tuning.ranges.n_bits.type",
    ),
    "categorical value the script refuses": (
        _replace("values: [sqrt, log2]", "values: [sqrt, auto]"),
        "tuning.ranges.max_features.values[1]",
    ),
    "31 categorical values": (
        _replace("    max_features: {type: categorical, values: [sqrt, log2]}\n", "").replace(
            "    momentum:",
            "    seed: {type: categorical, values: ["
            + ", ".join(str(i) for i in range(31))
            + "]}\n    momentum:",
        ),
        "tuning.ranges.seed.values",
    ),
    "31 ranges": (
        TUNING.split("  ranges:\n")[0] + "  ranges:\n" + MANY_RANGES + "  max_jobs: 12\n",
        "tuning.ranges",
    ),
    "more in parallel than in all": (
        _replace("max_parallel_jobs: 3", "max_parallel_jobs: 13"),
        "tuning.max_parallel_jobs",
    ),
    "no max_jobs": (_replace("  max_jobs: 12\n", ""), "tuning.max_jobs"),
    "grid over a numeric range": (
        _replace("strategy: Bayesian", "strategy: Grid"),
        "tuning.ranges.n_estimators.type",
    ),
    "hyperband with early stopping": (
        _replace("strategy: Bayesian", "strategy: Hyperband").replace(
            "early_stopping: Off", "early_stopping: Auto"
        )
        + "  hyperband: {max_resource: 20}\n",
        "tuning.early_stopping",
    ),
    "hyperband with no epochs to count": (
        _replace("strategy: Bayesian", "strategy: Hyperband"),
        "tuning.hyperband.max_resource",
    ),
    "negative seed": (_replace("random_seed: 11", "random_seed: -1"), "tuning.random_seed"),
    "warm start from a name SageMaker cannot have": (
        TUNING + "  warm_start: {parents: [" + "t" * 33 + "], type: TransferLearning}\n",
        "tuning.warm_start.parents[0]",
    ),
    "warm start type": (
        TUNING + "  warm_start: {parents: [tune-a], type: Identical}\n",
        "tuning.warm_start.type",
    ),
    "unknown key": (TUNING + "  max_trials: 3\n", "tuning.max_trials"),
}


@pytest.mark.parametrize("section, field", BAD_SECTIONS.values(), ids=BAD_SECTIONS.keys())
def test_a_bad_tuning_section_is_refused_in_one_line_naming_its_field(tmp_path, section, field):
    folder = tmp_path / "workload"
    path = write_workload(folder, section)
    before = sorted(p.name for p in folder.iterdir())

    with pytest.raises(InvalidSpecError) as refused:
        load_workload(path)

    assert refused.value.field == field, str(refused.value)
    assert "\n" not in str(refused.value)
    assert sorted(p.name for p in folder.iterdir()) == before, "nothing is written"
