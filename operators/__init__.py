"""Flywheel's retraining operator: RetrainPolicy resources launch KFP runs, exactly once per reason.

The public surface is the typed policy and the pure decision; kopf handlers live in
``operators.handlers`` and register themselves when that module is imported (``python -m
operators`` does it).
"""

from flywheel.operators.decision import Decision, Event, alarm_state, decide, run_key, run_name
from flywheel.operators.policy import (
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    FieldError,
    InvalidPolicy,
    Policy,
    parse_policy,
)

__all__ = [
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "Decision",
    "Event",
    "FieldError",
    "InvalidPolicy",
    "Policy",
    "alarm_state",
    "decide",
    "parse_policy",
    "run_key",
    "run_name",
]
