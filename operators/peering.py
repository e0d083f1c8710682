"""Replicas peer through kopf: exactly one acts, the others stand by and take over when it dies.

kopf's peering (``kopf/_core/engines/peering.py``) has every replica write a keep-alive with its
priority into the peering object. A replica pauses while a live peer has a higher priority, and
all pause while priorities tie, so each replica needs its own. Here the priority falls with the
start time: the oldest replica acts, and a restarted or newly rolled-out pod never preempts it
(a random draw breaks a tie within one millisecond). A replica killed with SIGKILL stops its
keep-alives; its entry expires after :data:`LIFETIME` seconds, and kopf wakes the standby at
that moment, which resumes.

Peering is mandatory unless ``--standalone``: a replica stays paused until it has read the
peering object, or else it would act alongside the active one until then.
"""

from __future__ import annotations

import os
import random
import time

import kopf
import kubernetes
from kubernetes.client.exceptions import ApiException

NAME = os.environ.get("FLYWHEEL_PEERING", "flywheel-retraining")
# Seconds a replica's keep-alive counts; the takeover after a kill takes about this long.
LIFETIME = int(os.environ.get("FLYWHEEL_PEERING_LIFETIME", "15"))


class PeeringMissing(RuntimeError):
    """The peering object to coordinate through does not exist."""


def priority(started: float, draw: int) -> int:
    """Higher for an earlier start (in milliseconds); ``draw`` (0-999) breaks ties."""
    return -(int(started * 1000) * 1000 + draw)


def configure(settings: kopf.PeeringSettings) -> None:
    """Name, lifetime and a priority of its own for this replica."""
    settings.name = NAME
    settings.lifetime = LIFETIME
    settings.priority = priority(time.time(), random.randrange(1000))
    settings.mandatory = not settings.standalone
    settings.stealth = True  # keep-alives every few seconds are not news


def replicas_from_environment() -> int:
    """How many replicas the deployment runs (``FLYWHEEL_REPLICAS``, set by the chart)."""
    return int(os.environ.get("FLYWHEEL_REPLICAS", "1"))


def require_object(api: kubernetes.client.CustomObjectsApi, namespaces: list[str]) -> None:
    """Fail at start when the peering object is absent: kopf would stay paused, silently."""
    try:
        if namespaces:
            for namespace in namespaces:
                api.get_namespaced_custom_object(
                    "kopf.dev", "v1", namespace, "kopfpeerings", NAME, _request_timeout=(5, 30)
                )
        else:
            api.get_cluster_custom_object(
                "kopf.dev", "v1", "clusterkopfpeerings", NAME, _request_timeout=(5, 30)
            )
    except ApiException as exc:
        if exc.status != 404:
            raise
        kind = "KopfPeering" if namespaces else "ClusterKopfPeering"
        where = f" in namespace {namespace}" if namespaces else ""
        raise PeeringMissing(
            f"no {kind} named {NAME!r}{where}: create it (the Helm chart does), "
            "or run a single replica with --standalone"
        ) from exc
