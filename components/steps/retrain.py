"""Is retraining needed? A threshold breach fires one retrain, however often it is evaluated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flywheel.components.monitoring.history import EvaluationHistory, evaluation_key
from flywheel.components.monitoring.thresholds import parse_threshold


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reason: str


def decide_retraining(
    *,
    history_root: str,
    model_name: str,
    task: str,
    threshold: str,
    model_version: int,
    batch: int,
    batch_sha256: str,
    metrics: Mapping[str, float],
    run_id: str,
) -> RetrainDecision:
    rule = parse_threshold(threshold, task, metrics)
    observed = f"{rule.metric}={metrics[rule.metric]:.4f}"
    if not rule.breached_by(metrics):
        decision = RetrainDecision(False, f"{observed} holds (retrain when {rule})")
    else:
        history = EvaluationHistory(history_root)
        key = evaluation_key(model_version, batch_sha256)
        fields = {
            "model_version": model_version,
            "batch": batch,
            "reason": f"{observed}, {rule}",
            "run_id": run_id,
        }
        if history.append_once(model_name, "retrain", key, fields):
            decision = RetrainDecision(True, f"{observed} breaches '{rule}': retraining")
        else:
            earlier = next(r for r in history.records(model_name, "retrain") if r["key"] == key)
            decision = RetrainDecision(
                False, f"{observed} breaches '{rule}', already retrained by run {earlier['run_id']}"
            )
    EvaluationHistory(history_root).append(
        model_name,
        "decision",
        evaluation_key(model_version, batch_sha256),
        {
            "retrain": decision.retrain,
            "reason": decision.reason,
            "batch": batch,
            "run_id": run_id,
            "threshold": str(rule),
        },
    )
    return decision
