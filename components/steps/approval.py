"""Asking a person to approve the quality gate's winner (a workload's ``approval: manual``).

The winner stays PendingManualApproval, and the workload's notify targets get one message: the
model and version, its scores against the champion's on the same held-out rows, and the exact
``flywheel approve`` and ``flywheel reject`` commands.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from flywheel.components.monitoring.notify import NotifyTarget, notify
from flywheel.components.registry import ModelVersion


def decision_command(verb: str, registry_uri: str, name: str, version: int) -> str:
    """``flywheel approve|reject NAME VERSION --registry URI --note ...``, ready to paste."""
    return (
        f"flywheel {verb} {shlex.quote(name)} {version} "
        f"--registry {shlex.quote(registry_uri)} --note '...'"
    )


def approval_request(
    *,
    registry_uri: str,
    candidate: ModelVersion,
    champion_version: int | None,
    champion_metrics: Mapping[str, float] | None,
    objective_metric: str,
) -> tuple[str, str]:
    """The subject and text telling people that ``candidate`` waits for their decision."""
    name, number = candidate.name, candidate.version
    against = f"champion version {champion_version}" if champion_version else "no champion yet"
    lines = [
        f"{name} version {number} beat the quality gate ({against}) and is waiting for "
        "approval (PendingManualApproval).",
        "",
        f"Scores on the same held-out rows, {name} version {number} vs the champion:",
    ]
    for metric, value in sorted(candidate.metrics.items()):
        old = (champion_metrics or {}).get(metric)
        mark = " (objective)" if metric == objective_metric else ""
        was = f"{old:.4f}" if old is not None else "-"
        lines.append(f"- {metric}{mark}: {value:.4f} vs {was}")
    lines += [
        "",
        f"Approve (it becomes the champion): {decision_command('approve', registry_uri, name, number)}",
        f"Reject: {decision_command('reject', registry_uri, name, number)}",
    ]
    return f"Flywheel: {name} version {number} needs approval", "\n".join(lines) + "\n"


def request_approval(
    target: NotifyTarget,
    *,
    registry_uri: str,
    candidate: ModelVersion,
    champion_version: int | None,
    champion_metrics: Mapping[str, float] | None,
    objective_metric: str,
) -> list[str]:
    """Print the request, and send it where ``target`` says; returns where it went."""
    subject, text = approval_request(
        registry_uri=registry_uri,
        candidate=candidate,
        champion_version=champion_version,
        champion_metrics=champion_metrics,
        objective_metric=objective_metric,
    )
    print(f"{subject}\n{text}", flush=True)
    return notify(target, subject, text)
