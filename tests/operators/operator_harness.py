"""Helpers for the operator's integration tests: the cluster as a user sees it, kopf in a thread."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import boto3
import kopf
import kubernetes

from flywheel.operators.policy import GROUP, PLURAL, VERSION
from flywheel.operators.poller import Services

NAMESPACE = "default"
REGION = "us-east-1"


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll until ``condition()`` is truthy; bounded in time, for the integration tests only."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Cluster:
    """The emulated cluster as a user sees it: a Kubernetes API client for RetrainPolicies."""

    def __init__(self, url: str) -> None:
        self.url = url
        config = kubernetes.client.Configuration()
        config.host = url
        self.api = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(config))
        self.core = kubernetes.client.CoreV1Api(self.api.api_client)

    def apply(
        self, name: str, spec: dict[str, Any], annotations: dict[str, str] | None = None
    ) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "RetrainPolicy",
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": spec,
        }
        return self.api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)

    def get(self, name: str) -> dict[str, Any]:
        return self.api.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)

    def annotate(self, name: str, key: str, value: str) -> None:
        self.api.patch_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, name, {"metadata": {"annotations": {key: value}}}
        )

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def condition(self, name: str, type_: str) -> dict[str, Any]:
        conditions = self.status(name).get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), {})

    def peers(self, peering: str = "flywheel-retraining") -> dict[str, dict[str, Any]]:
        """The replicas' keep-alives in the peering object, by identity."""
        obj = self.api.get_namespaced_custom_object(
            "kopf.dev", "v1", NAMESPACE, "kopfpeerings", peering
        )
        return obj.get("status") or {}

    def event_reasons(self, name: str) -> list[str]:
        events = self.core.list_namespaced_event(NAMESPACE).items
        return [e.reason for e in events if e.involved_object.name == name]


def aws_client(endpoint: str, service: str) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)


class OperatorThread:
    """kopf running the retraining operator in a thread; stop it to simulate a crash."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kopf", daemon=True)

    def _run(self) -> None:
        asyncio.run(
            kopf.operator(
                namespaces=[NAMESPACE],
                memo=kopf.Memo(services=self.services),
                stop_flag=self._stop,
                ready_flag=self._ready,
            )
        )

    def start(self) -> OperatorThread:
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("kopf did not start")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self._thread.is_alive():
            raise RuntimeError("kopf did not stop in 30 s")


class OperatorProcess:
    """``python -m flywheel.operators`` as a real process: one replica of the deployment.

    Its identity in the peering object is its name (kopf reads ``POD_ID``, as in a pod).
    """

    def __init__(self, name: str, env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flywheel.operators", "-n", NAMESPACE],
                env={**os.environ, **env, "POD_ID": name, "PYTHONUNBUFFERED": "1"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no goodbye to the peers, no cleanup."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.kill()  # kopf may wait up to 5 s for stray tasks; nothing to keep here
