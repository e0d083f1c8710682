"""Evaluation reports (SageMaker Pipelines' ``evaluation.json``): values at JSON paths, metrics."""

import json
from pathlib import Path

import pytest

from flywheel.components.errors import InvalidSpecError
from flywheel.components.monitoring import reports

ABALONE_STYLE = {"regression_metrics": {"mse": {"value": 4.25, "standard_deviation": 1.5}}}


def test_value_at_reads_the_json_path_a_sagemaker_condition_reads() -> None:
    assert reports.value_at(ABALONE_STYLE, "regression_metrics.mse.value") == 4.25
    assert reports.value_at({"scores": [{"auc": 0.9}]}, "scores.0.auc") == 0.9


def test_a_missing_json_path_is_refused_naming_the_path_and_the_keys_it_has() -> None:
    with pytest.raises(InvalidSpecError) as refused:
        reports.value_at(ABALONE_STYLE, "regression_metrics.rmse.value")
    assert str(refused.value) == (
        "json_path: regression_metrics.rmse.value: regression_metrics has no 'rmse'; it has ['mse']"
    )
    with pytest.raises(InvalidSpecError, match="the top level has no 'metrics'; it has"):
        reports.value_at(ABALONE_STYLE, "metrics.mse")


@pytest.mark.parametrize("value", ["4.2", None, True, float("nan"), {"value": 1}])
def test_a_value_that_is_not_a_finite_number_is_refused(value: object) -> None:
    with pytest.raises(InvalidSpecError, match=r"json_path: a\.b is .*not a finite number"):
        reports.value_at({"a": {"b": value}}, "a.b")


def test_every_number_of_the_report_becomes_a_metric_named_by_its_path() -> None:
    report = {**ABALONE_STYLE, "rows": 12, "label": "rings", "ok": True}
    assert reports.flat_metrics(report) == {
        "regression_metrics.mse": 4.25,
        "regression_metrics.mse.standard_deviation": 1.5,
        "rows": 12.0,
    }


def test_the_report_is_found_at_the_top_or_as_the_one_file_of_its_name(tmp_path: Path) -> None:
    (tmp_path / "evaluation").mkdir()
    nested = tmp_path / "evaluation" / "evaluation.json"
    nested.write_text(json.dumps(ABALONE_STYLE))
    assert reports.find_report(tmp_path) == nested
    (tmp_path / "evaluation.json").write_text("{}")
    assert reports.find_report(tmp_path) == tmp_path / "evaluation.json"


def test_a_missing_or_ambiguous_report_is_refused_saying_which(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpecError, match=r"report: no evaluation\.json under .*wrote none"):
        reports.find_report(tmp_path)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "evaluation.json").write_text("{}")
    with pytest.raises(InvalidSpecError, match=r"2 files named evaluation\.json: a/.*, b/"):
        reports.find_report(tmp_path)


def test_a_report_that_is_not_a_json_object_is_refused(tmp_path: Path) -> None:
    (tmp_path / "evaluation.json").write_text("[1, 2]")
    with pytest.raises(InvalidSpecError, match="must hold a JSON object"):
        reports.load_report(tmp_path / "evaluation.json")
