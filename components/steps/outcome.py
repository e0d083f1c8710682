"""Record how an evaluation run ended, on every path, and tell people."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flywheel.components.monitoring.history import EvaluationHistory
from flywheel.components.monitoring.notify import NotifyTarget, notify


def summarize_run(
    *,
    history_root: str,
    model_name: str,
    run_id: str,
    state: str,
    error: str,
    notify_config: Mapping[str, Any],
) -> str:
    """A Markdown summary of this run from the history; appended as an ``outcome`` record and sent."""
    history = EvaluationHistory(history_root)
    mine = [r for r in history.records(model_name) if r.get("run_id") == run_id]
    lines = [f"# {model_name}: evaluation run {run_id} {state.lower()}", ""]
    for record in mine:
        if record["kind"] == "evaluation":
            metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(record["metrics"].items()))
            lines.append(
                f"- batch {record['batch']} scored by version {record['model_version']}: {metrics}"
            )
        elif record["kind"] == "decision":
            lines.append(
                f"- {'retrain' if record['retrain'] else 'no retrain'}: {record['reason']}"
            )
    if error:
        lines.append(f"- failed: {error}")
    summary = "\n".join(lines) + "\n"
    history.append(
        model_name, "outcome", run_id, {"state": state, "error": error, "run_id": run_id}
    )
    target = NotifyTarget.from_config(notify_config)
    notify(target, f"Flywheel: {model_name} evaluation {state.lower()}", summary)
    return summary
