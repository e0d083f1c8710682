"""Helpers for the operator's integration tests: the cluster as a user sees it, kopf in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import kopf
import kubernetes
from fault_proxy import FaultProxy

from flywheel.operators.emulator import write_kubeconfig
from flywheel.operators.policy import GROUP, PLURAL, VERSION
from flywheel.operators.poller import Services

NAMESPACE = "default"
REGION = "us-east-1"
# Leader election for tests: 4 s lease, 3 s renew deadline, 0.5 s retry (production: 15, 10, 2).
SHORT_LEASE = {
    "FLYWHEEL_LEASE_DURATION_SECONDS": "4",
    "FLYWHEEL_LEASE_RENEW_DEADLINE_SECONDS": "3",
    "FLYWHEEL_LEASE_RETRY_PERIOD_SECONDS": "0.5",
}


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

    def delete(self, name: str) -> None:
        self.api.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)

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

    def lease_holder(self, lease: str = "flywheel-retraining") -> str | None:
        """The replica holding the leader-election Lease: its name (``POD_ID``), or ``None``."""
        coordination = kubernetes.client.CoordinationV1Api(self.api.api_client)
        try:
            found = coordination.read_namespaced_lease(lease, NAMESPACE)
        except kubernetes.client.exceptions.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        holder = found.spec.holder_identity or ""
        return holder.rsplit("_", 1)[0] or None

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

    Its identity in the Lease is its name (``POD_ID``, as in a pod) and a random suffix.
    """

    def __init__(self, name: str, env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.replaced = False  # by a new process, after this one exited
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

    def alive(self) -> bool:
        return self.process.poll() is None

    def leading(self) -> bool:
        """Whether it said it acquired the Lease (and so started acting)."""
        return "Acquired the lease" in self.output()

    def standing_by(self) -> bool:
        return "Standing by for the lease" in self.output()

    def freeze(self) -> None:
        """SIGSTOP: a GC pause, a stalled node; it resumes with :meth:`thaw`."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: no goodbye to the peers, no cleanup."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.thaw()  # a frozen process never handles SIGTERM
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.kill()  # kopf may wait up to 5 s for stray tasks; nothing to keep here


class Replicas:
    """Operator processes sharing one cluster and one KFP, each through the fault proxies.

    :meth:`restart_exited` plays the kubelet: a replica that exited (it stopped leading) comes
    back as a new process, under a new name, and stands by.
    """

    def __init__(self, kube: FaultProxy, kfp: FaultProxy, env: dict[str, str], logs: Path):
        self.kube = kube
        self.kfp = kfp
        self.env = env
        self.logs = logs
        self.started: list[OperatorProcess] = []

    def start(self, name: str) -> OperatorProcess:
        replica = OperatorProcess(name, self.env, self.logs)
        self.started.append(replica)
        return replica

    def alive(self) -> list[OperatorProcess]:
        return [r for r in self.started if r.alive()]

    def restart_exited(self) -> None:
        """Replace each exited replica by a new one (``replica-a`` → ``replica-a.2``)."""
        for replica in [r for r in self.started if not r.alive()]:
            if replica.replaced:
                continue
            replica.replaced = True
            base, _, count = replica.name.partition(".")
            self.start(f"{base}.{int(count or 1) + 1}")

    def leader(self, cluster: Cluster) -> OperatorProcess | None:
        holder = cluster.lease_holder()
        return next((r for r in self.alive() if r.name == holder and r.leading()), None)

    def settled(self, cluster: Cluster, timeout: float = 60) -> tuple[OperatorProcess, ...]:
        """Restart exited replicas; wait for one leader, acting, and the others standing by."""
        self.restart_exited()
        leader = wait_for(lambda: self.leader(cluster), timeout=timeout, what="a leader")
        others = [r for r in self.alive() if r is not leader]
        for other in others:
            wait_for(other.standing_by, timeout=timeout, what=f"{other.name} to stand by")
        return (leader, *others)

    def stop_all(self) -> None:
        for replica in self.started:
            replica.stop()
            print(f"---- {replica.name} ----\n{replica.output()[-6000:]}")


@contextlib.contextmanager
def replica_group(cluster: Cluster, kfp_url: str, aws: str, logs: Path) -> Iterator[Replicas]:
    """Proxies in front of the emulator and KFP, and the environment replicas run with."""
    with FaultProxy(cluster.url) as kube, FaultProxy(kfp_url) as kfp:
        kubeconfig = write_kubeconfig(logs / "proxied-kubeconfig", kube.url, NAMESPACE)
        env = {
            "KUBECONFIG": str(kubeconfig),
            "KF_PIPELINES_ENDPOINT": kfp.url,
            "FLYWHEEL_TICK_SECONDS": "0.5",
            "FLYWHEEL_REPLICAS": "2",
            "AWS_ENDPOINT_URL": aws,
            "AWS_DEFAULT_REGION": REGION,
            **SHORT_LEASE,
        }
        group = Replicas(kube, kfp, env, logs)
        try:
            yield group
        finally:
            group.stop_all()
