"""Watching KFP's PipelineVersion resources: a sync (a git revert included) re-resolves at once.

Which version a policy runs is looked up in KFP and kept in ``status.observations.pipeline``;
without a watch it is looked up again only every few minutes, so after a revert the operator
would launch the reverted-away version (or fail on a pruned one) until then. KFP's
Kubernetes-native mode stores versions as ``pipelines.kubeflow.org/v2beta1`` PipelineVersion
objects: every change of one that can concern a policy makes that policy look up again at once.

Where the resource is not served (KFP in database mode) or may not be read, the timer stays the
only re-check, and the watch tries again every few minutes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from flywheel.operators.policy import Policy

log = logging.getLogger(__name__)
GROUP, VERSION, PLURAL = "pipelines.kubeflow.org", "v2beta1", "pipelineversions"
WATCH_SECONDS = 300  # a watch ends after this long and is made again from where it stopped
RETRY_SECONDS = 5.0  # after a broken connection
ABSENT_RETRY_SECONDS = 300.0  # after 404 (no such resource) or 403 (no permission)


def watched_namespace() -> str:
    """Where the PipelineVersions live: the profile namespace of multi-user KFP, else KFP's."""
    return (
        os.environ.get("KFP_PIPELINES_NAMESPACE") or os.environ.get("KFP_NAMESPACE") or "kubeflow"
    )


def concerns(policy: Policy, version: Mapping[str, Any]) -> bool:
    """Whether a change of this PipelineVersion can change which version ``policy`` runs."""
    spec = version.get("spec") or {}
    names = {(version.get("metadata") or {}).get("name"), spec.get("displayName")}
    ref = policy.pipeline
    if ref.pipeline_version_ref:
        return ref.pipeline_version_ref in names
    if ref.version and ref.version not in names:
        return False
    return spec.get("pipelineName") in (None, ref.name)


class VersionWatch:
    """Watches PipelineVersions in one namespace from a thread of its own; calls ``on_change``
    with each changed object on the event loop given."""

    def __init__(
        self,
        api: kubernetes.client.CustomObjectsApi,
        namespace: str,
        on_change: Callable[[Mapping[str, Any]], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.on_change = on_change
        self.loop = loop
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pipelineversions", daemon=True)

    def start(self) -> VersionWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        version: str | None = None
        absent_logged = False
        while not self._stop.is_set():
            try:
                if version is None:
                    listed = self.api.list_namespaced_custom_object(
                        GROUP, VERSION, self.namespace, PLURAL, _request_timeout=(5, 30)
                    )
                    version = listed["metadata"].get("resourceVersion")
                version = self._watch(version)
                absent_logged = False
            except ApiException as exc:
                if exc.status in (403, 404):
                    if not absent_logged:
                        log.info(
                            "Not watching PipelineVersions in %s (%s %s): versions are re-checked "
                            "every few minutes instead",
                            self.namespace,
                            exc.status,
                            exc.reason,
                        )
                        absent_logged = True
                    version = None
                    self._stop.wait(ABSENT_RETRY_SECONDS)
                else:
                    version = None if exc.status == 410 else version  # 410: too old, list again
                    self._stop.wait(RETRY_SECONDS)
            except (OSError, urllib3.exceptions.HTTPError, ValueError) as exc:
                log.debug("PipelineVersion watch broke, watching again: %s", exc)
                self._stop.wait(RETRY_SECONDS)

    def _watch(self, version: str | None) -> str | None:
        """One watch from ``version``; returns the last resourceVersion seen."""
        watch = kubernetes.watch.Watch()
        for event in watch.stream(
            self.api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            resource_version=version,
            timeout_seconds=WATCH_SECONDS,
            _request_timeout=(5, WATCH_SECONDS + 30),
        ):
            if self._stop.is_set():
                watch.stop()
                break
            obj = event.get("object")
            if event.get("type") == "ERROR":
                code = (obj or {}).get("code")
                raise ApiException(status=code or 500, reason=(obj or {}).get("reason"))
            if isinstance(obj, Mapping):
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                self.loop.call_soon_threadsafe(self.on_change, obj)
        return version
