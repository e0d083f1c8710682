"""Prometheus metrics of the operator itself: what it evaluated, launched, skipped and failed.

Module-level collectors on the default registry, as ``prometheus_client`` intends; the
operator serves them on ``/metrics`` when started with a metrics port.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

EVALUATIONS = Counter("flywheel_retrain_evaluations_total", "Decisions taken for a RetrainPolicy.")
SOURCE_READS = Counter(
    "flywheel_retrain_source_reads_total",
    "Reads of trigger sources, by kind and outcome.",
    ["kind", "outcome"],
)
LAUNCHES = Counter(
    "flywheel_retrain_launches_total",
    "KFP runs created (created) or found already created by key (adopted).",
    ["outcome"],
)
SKIPS = Counter(
    "flywheel_retrain_skips_total",
    "Firings not launched, by reason (Skipped, Queued, WouldTrigger, ...).",
    ["reason"],
)
ERRORS = Counter("flywheel_retrain_errors_total", "Failures talking to KFP or a source.", ["where"])
LAUNCH_LATENCY = Histogram(
    "flywheel_retrain_launch_latency_seconds",
    "From the decision to fire (the run key in status) to the KFP run existing.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SOURCE_LATENCY = Histogram(
    "flywheel_retrain_source_latency_seconds", "Duration of one source read.", ["kind"]
)


def serve(port: int, address: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` on a background thread (prometheus_client's own server)."""
    start_http_server(port, addr=address)
