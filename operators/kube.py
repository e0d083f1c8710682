"""Reads and conditional status writes of RetrainPolicies, through the Kubernetes API.

A decision is made from one version of the object, so it may land only on that version; so is
an observation. Every status patch carries ``metadata.resourceVersion``, which the API server
treats as a precondition: a write made from a stale watch event, or by a replica that stopped
leading while it worked, is answered 409 Conflict instead of overwriting newer state, and the
caller reads again and decides (or observes) again. Writes also ask
:func:`operators.leadership.check` first, through the REST client (see
:func:`operators.leadership.guard_writes`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from flywheel.operators.policy import GROUP, PLURAL, VERSION

# (connect, read) seconds: a hung API server must not hold a policy's handler for good.
KUBE_TIMEOUT = (5.0, 30.0)


class Conflict(Exception):
    """The object changed since it was read: read it again and decide again."""


class Unavailable(Exception):
    """The API server did not answer, or answered 429 or 5xx: try again shortly."""


def _transient(exc: Exception) -> bool:
    if isinstance(exc, ApiException):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, OSError | urllib3.exceptions.HTTPError)


def _answer(
    doing: str, request: Callable[[], dict[str, Any]], conflict: str = ""
) -> dict[str, Any] | None:
    """``request()``'s object, ``None`` once it is gone; a 409 raises :class:`Conflict` when
    ``conflict`` says why, a 429, 5xx or network failure :class:`Unavailable`."""
    try:
        return request()
    except ApiException as exc:
        if exc.status == 409 and conflict:
            raise Conflict(conflict) from exc
        if exc.status == 404:
            return None
        if _transient(exc):
            raise Unavailable(f"{doing}: {exc.status} {exc.reason}") from exc
        raise
    except (OSError, urllib3.exceptions.HTTPError) as exc:
        raise Unavailable(f"{doing}: {exc}") from exc


def client_from_environment() -> kubernetes.client.ApiClient:
    """The service account in a cluster, else the kubeconfig named by ``KUBECONFIG``."""
    config = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=config)
        return kubernetes.client.ApiClient(config)
    except kubernetes.config.ConfigException:
        return kubernetes.config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))


def api_from_environment() -> kubernetes.client.CustomObjectsApi:
    """Custom objects through :func:`client_from_environment`."""
    return kubernetes.client.CustomObjectsApi(client_from_environment())


@dataclass
class PolicyStore:
    """Reads and conditional status writes of one flywheel.dev resource (RetrainPolicies unless
    ``plural`` says otherwise); blocking, call from a worker thread."""

    api: kubernetes.client.CustomObjectsApi
    timeout: tuple[float, float] = KUBE_TIMEOUT
    plural: str = PLURAL

    def read(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The object as stored now; ``None`` once it is gone."""
        return _answer(
            f"reading {namespace}/{name}",
            lambda: self.api.get_namespaced_custom_object(
                GROUP, VERSION, namespace, self.plural, name, _request_timeout=self.timeout
            ),
        )

    def patch_observations(
        self, namespace: str, name: str, resource_version: str, observations: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge into ``status.observations`` if the object is still at ``resource_version``.

        The poller is their only writer, yet not the only poller: a replica frozen while it
        observed (a GC pause, a stalled node) would otherwise write its old readings over newer
        ones, and an old window of a metric re-arms a trigger that already fired. Raises
        :class:`Conflict` when the object moved on: observe again from what is stored.
        """
        body = {
            "metadata": {"resourceVersion": resource_version},
            "status": {"observations": observations},
        }
        return _answer(
            f"writing {namespace}/{name}",
            lambda: self.api.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, self.plural, name, body, _request_timeout=self.timeout
            ),
            conflict=f"{namespace}/{name} changed since resourceVersion {resource_version}",
        )

    def patch_status(
        self, namespace: str, name: str, resource_version: str, changes: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge ``changes`` into status if the object is still at ``resource_version``.

        Raises :class:`Conflict` when it is not, :class:`Unavailable` when the API server
        failed to answer; returns ``None`` when the object is gone.
        """
        body = {"metadata": {"resourceVersion": resource_version}, "status": changes}
        return _answer(
            f"writing {namespace}/{name}",
            lambda: self.api.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, self.plural, name, body, _request_timeout=self.timeout
            ),
            conflict=f"{namespace}/{name} changed since resourceVersion {resource_version}",
        )
