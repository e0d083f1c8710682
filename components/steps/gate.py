"""The quality gate: promote a candidate only if it beats the champion by a margin, or, with
``approval: manual``, ask a person to approve it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from flywheel.components.errors import InvalidSpecError
from flywheel.components.monitoring.notify import NotifyTarget
from flywheel.components.registry import open_registry
from flywheel.components.steps.approval import request_approval

# Scores of the same model on the same rows can differ in their last bits (summation order,
# JSON round trips); a difference this small, relative to the scores, is noise, never a win.
RELATIVE_TOLERANCE = 1e-9


def noise_floor(new: float, old: float) -> float:
    """The smallest improvement that is not float noise for scores of this size."""
    return RELATIVE_TOLERANCE * max(1.0, abs(new), abs(old))


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
    """Pure rule: with no champion the candidate wins; otherwise it must be better by more than
    ``margin`` and by more than float noise (``noise_floor``), so an equal score never wins."""
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
    if not (math.isfinite(new) and math.isfinite(old)):
        return GateDecision(False, f"{metric} {new} vs champion {old}: not comparable")
    improvement = old - new if goal == "minimize" else new - old
    wins = improvement > margin and improvement > noise_floor(new, old)
    verdict = "beats" if wins else "does not beat"
    return GateDecision(
        wins,
        f"{metric} {new:.4f} vs champion {old:.4f}: {verdict} it by more than {margin} "
        f"(improvement {improvement:.3g})",
    )


def decide_promotion(
    *,
    candidate_version: int,
    candidate_sha256: str,
    candidate_metrics: Mapping[str, float],
    champion_version: int | None,
    champion_sha256: str | None,
    champion_metrics: Mapping[str, float] | None,
    metric: str,
    goal: str,
    margin: float,
) -> GateDecision:
    """Whether the candidate should replace the champion, both measured on the same held-out rows.

    The same model bytes are never promoted over themselves, whatever the scores say.
    """
    if champion_version == candidate_version:
        return GateDecision(False, f"version {candidate_version} is already the champion")
    if champion_sha256 == candidate_sha256:
        return GateDecision(
            False,
            f"version {candidate_version} holds the same model bytes as champion "
            f"version {champion_version}",
        )
    return compare(candidate_metrics, champion_metrics, metric, goal, margin)


GATE = "flywheel quality gate"


def promote_model(
    *,
    registry_uri: str,
    model_name: str,
    version: int,
    compared_with: int | None,
    reason: str,
    approval: str = "auto",
    notify_target: NotifyTarget | None = None,
    champion_metrics: Mapping[str, float] | None = None,
    objective_metric: str = "",
) -> GateDecision:
    """Promote the gate's winner (``approval: auto``), or ask a person to (``manual``).

    Neither happens if the champion it was compared with has been replaced meanwhile, or if
    someone already rejected this version (the same model bytes trained again): the gate does
    not overrule a person. With ``manual`` the version stays PendingManualApproval and
    ``notify_target`` is sent its scores against the champion's and the approve command.
    """
    registry = open_registry(registry_uri)
    current = registry.champion(model_name)
    current_version = None if current is None else current.version
    if current_version != compared_with:
        return GateDecision(
            False,
            f"the champion changed to version {current_version} while this run compared against {compared_with}",
        )
    candidate = registry.get(model_name, version)
    if candidate.approval == "Rejected":
        last = candidate.approvals[-1] if candidate.approvals else {}
        return GateDecision(
            False, f"version {version} was Rejected by {last.get('by') or 'someone'}; left as it is"
        )
    if approval == "manual":
        request_approval(
            notify_target or NotifyTarget(),
            registry_uri=registry_uri,
            candidate=candidate,
            champion_version=compared_with,
            champion_metrics=champion_metrics,
            objective_metric=objective_metric,
        )
        return GateDecision(False, f"version {version} is waiting for approval ({reason})")
    registry.promote(model_name, version, reason, by=GATE)
    return GateDecision(True, reason)
