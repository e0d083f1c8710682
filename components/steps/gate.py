"""The quality gate: promote a candidate only if it beats the champion by a margin."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from components.errors import InvalidSpecError
from components.registry import ModelRegistry, open_registry


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str


def compare(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    metric: str,
    goal: str,
    margin: float,
) -> GateDecision:
    """Pure rule: with no champion the candidate wins; otherwise it must be better by ``margin``."""
    if margin < 0:
        raise InvalidSpecError("margin", f"must be zero or more, got {margin}")
    if metric not in candidate:
        raise InvalidSpecError(
            "objective.metric", f"candidate has no {metric!r}; it has {', '.join(candidate)}"
        )
    if champion is None:
        return GateDecision(True, f"no champion yet; {metric}={candidate[metric]:.4f}")
    if metric not in champion:
        return GateDecision(True, f"champion has no {metric!r} to compare against")
    new, old = candidate[metric], champion[metric]
    improvement = old - new if goal == "minimize" else new - old
    verdict = "beats" if improvement > margin else "does not beat"
    return GateDecision(
        improvement > margin,
        f"{metric} {new:.4f} vs champion {old:.4f}: {verdict} it by more than {margin}",
    )


def _decide(
    registry: ModelRegistry, model_name: str, version: int, metric: str, goal: str, margin: float
) -> GateDecision:
    candidate = registry.get(model_name, version)
    champion = registry.champion(model_name)
    if champion is not None and champion.version == version:
        return GateDecision(False, f"version {version} is already the champion")
    return compare(
        candidate.metrics, None if champion is None else champion.metrics, metric, goal, margin
    )


def decide_promotion(
    *, registry_uri: str, model_name: str, version: int, metric: str, goal: str, margin: float
) -> GateDecision:
    """Whether ``version`` should replace the current champion."""
    return _decide(open_registry(registry_uri), model_name, version, metric, goal, margin)


def promote_if_better(
    *, registry_uri: str, model_name: str, version: int, metric: str, goal: str, margin: float
) -> GateDecision:
    """Promote ``version`` if it still beats the champion; another run may have promoted meanwhile."""
    registry = open_registry(registry_uri)
    decision = _decide(registry, model_name, version, metric, goal, margin)
    if decision.promote:
        registry.promote(model_name, version, decision.reason)
    return decision
