"""Leader election with a ``coordination.k8s.io/v1`` Lease: exactly one replica acts.

The pattern of client-go's ``tools/leaderelection``, which kube-controller-manager runs:

* A standby reads the Lease every retry period and judges expiry by how long it has *observed*
  the holder's record unchanged, on its own monotonic clock. It never compares the renewTime
  another machine wrote with its own wall clock: clocks differ, and a frozen leader writes none.
* Acquiring and renewing are writes conditional on the Lease's resourceVersion: when two
  replicas try at once, one gets 409 Conflict and stays a standby.
* A leader that has not renewed within the renew deadline (shorter than the lease) stops
  acting: every write the handlers send asks :func:`check` first, and a watchdog thread exits
  the process at the deadline, so the pod restarts as a standby (client-go's OnStoppedLeading).
  A standby takes over no earlier than a lease duration after it saw the record change, and
  that change landed after the leader's last successful renew began: the old leader has
  stopped ``lease - renew`` seconds before (5 s with the defaults).

A replica frozen past its deadline (SIGSTOP, a GC pause, a stalled node) finds it passed when
it resumes: its first write exits instead, and so does the watchdog. Status writes are
conditional on the resourceVersion they were decided on as well (:mod:`operators.kube`), so a
write already on the wire when the lease passed is refused by the API server, not applied.

kopf starts only once the Lease is held, with its own peering off; ``--standalone`` runs one
replica without any of this.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_NAME = "flywheel-retraining"
# The exit status of a replica that stopped leading: the pod restarts and stands by.
EXIT_STOPPED_LEADING = 3


class NotLeading(RuntimeError):
    """This replica does not hold the Lease (any more): it must not write."""


@dataclass(frozen=True)
class Timing:
    """client-go's defaults: lease 15 s, renew deadline 10 s, retry period 2 s.

    The gap between lease and renew deadline is the margin for a leader to stop, and for the
    two replicas' clocks to run at slightly different rates.
    """

    lease_seconds: int = 15
    renew_deadline_seconds: float = 10.0
    retry_seconds: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_seconds < self.renew_deadline_seconds < self.lease_seconds:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration, got "
                f"{self.retry_seconds} s, {self.renew_deadline_seconds} s, {self.lease_seconds} s"
            )

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> Timing:
        """``FLYWHEEL_LEASE_DURATION_SECONDS``, ``FLYWHEEL_LEASE_RENEW_DEADLINE_SECONDS``,
        ``FLYWHEEL_LEASE_RETRY_PERIOD_SECONDS``; the defaults where unset."""
        default = cls()
        return cls(
            lease_seconds=int(env.get("FLYWHEEL_LEASE_DURATION_SECONDS", default.lease_seconds)),
            renew_deadline_seconds=float(
                env.get("FLYWHEEL_LEASE_RENEW_DEADLINE_SECONDS", default.renew_deadline_seconds)
            ),
            retry_seconds=float(
                env.get("FLYWHEEL_LEASE_RETRY_PERIOD_SECONDS", default.retry_seconds)
            ),
        )


def replicas_from_environment(env: Mapping[str, str] = os.environ) -> int:
    """How many replicas the deployment runs (``FLYWHEEL_REPLICAS``, set by the chart)."""
    return int(env.get("FLYWHEEL_REPLICAS", "1"))


def lease_name(env: Mapping[str, str] = os.environ) -> str:
    """``FLYWHEEL_LEASE_NAME``: the chart names it after the release; one Lease per release."""
    return env.get("FLYWHEEL_LEASE_NAME") or DEFAULT_NAME


def identity(env: Mapping[str, str] = os.environ) -> str:
    """The pod's name (``POD_ID``, as the chart sets it) and a random suffix: a restarted
    process is a new candidate, never mistaken for the leader it was."""
    pod = env.get("POD_ID") or env.get("POD_NAME") or socket.gethostname()
    return f"{pod}_{secrets.token_hex(3)}"


def lease_namespace(watched: list[str], env: Mapping[str, str] = os.environ) -> str:
    """Where the Lease lives: the operator's own namespace.

    ``FLYWHEEL_LEASE_NAMESPACE``, else ``POD_NAMESPACE`` (the downward API), else the service
    account's namespace in a pod, else the first watched namespace, else ``default``.
    """
    for key in ("FLYWHEEL_LEASE_NAMESPACE", "POD_NAMESPACE"):
        if env.get(key):
            return env[key]
    if SERVICE_ACCOUNT_NAMESPACE.is_file():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    return watched[0] if watched else "default"


@dataclass(frozen=True)
class Record:
    """What a standby watches for change: any renew, by anyone, changes it."""

    holder: str
    lease_seconds: int
    acquire_time: str
    renew_time: str
    transitions: int


def _record(lease: Mapping[str, Any]) -> Record:
    spec = lease.get("spec") or {}
    return Record(
        holder=spec.get("holderIdentity") or "",
        lease_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=str(spec.get("acquireTime") or ""),
        renew_time=str(spec.get("renewTime") or ""),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


def _micro_time(moment: datetime) -> str:
    """A MicroTime as the API server parses it (always six fractional digits)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def exit_process(reason: str) -> None:
    """OnStoppedLeading: exit at once, from whichever thread noticed, so that no handler
    writes after it; the pod restarts as a standby."""
    log.error("Stopped leading: %s; exiting so that this replica restarts as a standby", reason)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(EXIT_STOPPED_LEADING)


class Elector:
    """One candidate for the Lease ``namespace/name``.

    :meth:`acquire` blocks until this replica holds the Lease, then renews it from a thread of
    its own and watches the renew deadline from another; ``on_lost`` is called once when the
    deadline passes or another replica is seen holding the Lease (by default: exit).
    """

    def __init__(
        self,
        api: kubernetes.client.CoordinationV1Api,
        namespace: str,
        name: str,
        me: str,
        timing: Timing,
        on_lost: Callable[[str], None] = exit_process,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.me = me
        self.timing = timing
        self.on_lost = on_lost
        self.clock = clock
        self._observed: Record | None = None
        self._observed_at = 0.0
        self._deadline = float("-inf")  # leading while the clock is before it
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._lost_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._last_holder: str | None = None
        self._failing = False

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    def leading(self) -> bool:
        """Holds the Lease and is within the renew deadline, by this process's own clock."""
        return not self._lost.is_set() and self.clock() < self._deadline

    def check(self) -> None:
        """Raise :class:`NotLeading`, and stop leading, once the renew deadline has passed."""
        if self.leading():
            return
        self.lose("the renew deadline passed before this write")
        raise NotLeading(f"{self.me} no longer holds the lease {self.where}")

    def lose(self, reason: str) -> None:
        """Stop leading, once: the deadline is gone, and ``on_lost`` is told why."""
        with self._lost_lock:
            if self._lost.is_set():
                return
            self._lost.set()
            self._deadline = float("-inf")
        self._stop.set()
        self.on_lost(f"lease {self.where}: {reason}")

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Block until this replica holds the Lease (``False`` if ``stop`` was set first);
        then keep it renewed in the background."""
        log.info("Standing by for the lease %s as %s", self.where, self.me)
        while True:
            if self.try_acquire_or_renew():
                break
            if (stop or self._stop).wait(self.timing.retry_seconds):
                return False
        log.info("Acquired the lease %s as %s: acting", self.where, self.me)
        for target, name in ((self._renew_loop, "lease-renew"), (self._watchdog, "lease-watchdog")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return True

    def stop(self) -> None:
        """Stop renewing (tests; a process that exits needs nothing: its lease expires)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def try_acquire_or_renew(self) -> bool:
        """One attempt, as client-go's ``tryAcquireOrRenew``; ``True`` when it holds the Lease.

        A leader's renew deadline counts from the start of the attempt: the renew landed no
        earlier, and no standby's observation of it can be earlier either.
        """
        started = self.clock()
        timeout = self._timeout()
        try:
            lease = self._read(timeout)
            if self._failing:
                log.info("The lease %s answers again", self.where)
                self._failing = False
            now = _micro_time(datetime.now(tz=UTC))
            if lease is None:
                spec = self._spec(now, acquired=now, transitions=0)
                written = self._create(spec, timeout)
            else:
                record = _record(lease)
                self._note(record)
                if record.holder and record.holder != self.me:
                    if self._leading_since(started):
                        self.lose(f"{record.holder} holds it now")
                        return False
                    expiry = record.lease_seconds or self.timing.lease_seconds
                    if self.clock() < self._observed_at + expiry:
                        return False
                taking = record.holder != self.me
                spec = self._spec(
                    now,
                    acquired=now if taking else record.acquire_time,
                    transitions=record.transitions + (1 if taking else 0),
                )
                version = lease["metadata"]["resourceVersion"]
                written = self._update(version, spec, timeout)
        except ApiException as exc:
            if exc.status == 409:
                return False  # another replica wrote first: it won this round
            self._failed(f"{exc.status} {exc.reason}")
            return False
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            self._failed(str(exc))
            return False
        self._note(_record(written))
        if not self._lost.is_set():
            self._deadline = started + self.timing.renew_deadline_seconds
        return True

    def _failed(self, why: str) -> None:
        """One line when the Lease stops answering, not one per retry."""
        if not self._failing:
            log.warning("The lease %s cannot be read or written: %s; retrying", self.where, why)
            self._failing = True

    def _leading_since(self, started: float) -> bool:
        return not self._lost.is_set() and started < self._deadline

    def _note(self, record: Record) -> None:
        """The standby's clock: when this record was first seen."""
        if record != self._observed:
            self._observed = record
            self._observed_at = self.clock()
            if record.holder != self._last_holder and record.holder != self.me:
                log.info("The lease %s is held by %s", self.where, record.holder or "nobody")
            self._last_holder = record.holder

    def _spec(self, now: str, *, acquired: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.me,
            "leaseDurationSeconds": self.timing.lease_seconds,
            "acquireTime": acquired,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def _timeout(self) -> tuple[float, float]:
        """No attempt may outlast the renew deadline it is trying to extend."""
        left = (
            self._deadline - self.clock() if self.leading() else self.timing.renew_deadline_seconds
        )
        each = max(0.2, min(left, self.timing.renew_deadline_seconds) / 2)
        return (each, each)

    def _read(self, timeout: tuple[float, float]) -> dict[str, Any] | None:
        try:
            response = self.api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=timeout, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return json.loads(response.data)

    def _create(self, spec: dict[str, Any], timeout: tuple[float, float]) -> dict[str, Any]:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }
        response = self.api.create_namespaced_lease(
            self.namespace, body, _request_timeout=timeout, _preload_content=False
        )
        return json.loads(response.data)

    def _update(
        self, version: str, spec: dict[str, Any], timeout: tuple[float, float]
    ) -> dict[str, Any]:
        # A replace carrying the resourceVersion it read: 409 if anyone wrote since.
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": version,
            },
            "spec": spec,
        }
        response = self.api.replace_namespaced_lease(
            self.name, self.namespace, body, _request_timeout=timeout, _preload_content=False
        )
        return json.loads(response.data)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.timing.retry_seconds):
            if not self.leading():
                self.lose(f"not renewed within {self.timing.renew_deadline_seconds:g} s")
                return
            self.try_acquire_or_renew()

    def _watchdog(self) -> None:
        """Stop at the deadline even while a renew hangs: leading ends by this clock alone."""
        while not self._stop.is_set():
            left = self._deadline - self.clock()
            if left <= 0 or self._lost.is_set():
                self.lose(f"not renewed within {self.timing.renew_deadline_seconds:g} s")
                return
            self._stop.wait(min(left, self.timing.retry_seconds))


_current: Elector | None = None


def install(elector: Elector | None) -> None:
    """Make ``elector`` the one :func:`check` asks (``None``: a single replica, always acting)."""
    global _current
    _current = elector


def check() -> None:
    """Before every write: raise :class:`NotLeading` (and stop) once this replica may not act.

    Without an elector (``--standalone``, the in-process tests) every write may go.
    """
    if _current is not None:
        _current.check()


def guard_writes(rest_client: Any) -> None:
    """Make every request but a read through ``rest_client`` call :func:`check` just before it
    is sent: the Kubernetes client's and the KFP client's, which share the generated layout."""
    if getattr(rest_client, "_leadership_guarded", False):
        return
    request = rest_client.request

    def guarded(method: str, *args: Any, **kwargs: Any) -> Any:
        if method.upper() not in ("GET", "HEAD", "OPTIONS"):
            check()
        return request(method, *args, **kwargs)

    rest_client.request = guarded
    rest_client._leadership_guarded = True
