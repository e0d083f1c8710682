"""The quality gate promotes only a real improvement, never the champion's own bytes or noise."""

from __future__ import annotations

import pytest

from flywheel.components.steps.gate import compare, decide_promotion


def _decide(candidate: float, champion: float, **overrides) -> bool:
    fields = {
        "candidate_version": 2,
        "candidate_sha256": "b" * 64,
        "candidate_metrics": {"rmse": candidate},
        "champion_version": 1,
        "champion_sha256": "a" * 64,
        "champion_metrics": {"rmse": champion},
        "metric": "rmse",
        "goal": "minimize",
        "margin": 0.0,
    }
    return decide_promotion(**{**fields, **overrides}).promote


def test_an_equal_score_that_differs_only_by_float_noise_is_not_a_win() -> None:
    decision = compare({"rmse": 0.2760}, {"rmse": 0.2760 + 1e-16}, "rmse", "minimize", 0.0)
    assert not decision.promote
    assert "does not beat" in decision.reason
    assert not compare({"r2": 0.71 + 1e-15}, {"r2": 0.71}, "r2", "maximize", 0.0).promote


def test_a_real_improvement_beyond_the_margin_is_a_win() -> None:
    assert compare({"rmse": 0.27}, {"rmse": 0.28}, "rmse", "minimize", 0.0).promote
    assert not compare({"rmse": 0.27}, {"rmse": 0.28}, "rmse", "minimize", 0.05).promote
    assert compare({"r2": 0.75}, {"r2": 0.70}, "r2", "maximize", 0.01).promote


def test_an_identical_model_is_never_promoted_whatever_its_scores() -> None:
    assert _decide(0.20, 0.30)
    assert not _decide(0.20, 0.30, champion_sha256="b" * 64)
    assert not _decide(0.20, 0.30, champion_version=2)


@pytest.mark.parametrize("score", [float("nan"), float("inf")])
def test_a_score_that_is_not_a_number_never_wins(score: float) -> None:
    assert not compare({"rmse": score}, {"rmse": 0.3}, "rmse", "minimize", 0.0).promote
