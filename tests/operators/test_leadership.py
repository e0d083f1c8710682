"""Leader election on a Lease, in one process against the emulator: who may act, and when.

Short timings (2 s lease, 1.5 s renew deadline, 0.2 s retry; in production 15 s, 10 s, 2 s).
``test_replica_faults.py`` proves the same with real replicas, an outage and frozen processes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from fault_proxy import FaultProxy
from operator_harness import NAMESPACE, Cluster, wait_for

from flywheel.operators import leadership
from flywheel.operators.leadership import Elector, NotLeading, Timing

TIMING = Timing(lease_seconds=2, renew_deadline_seconds=1.5, retry_seconds=0.2)
LEASE = "flywheel-retraining"


def coordination(url: str) -> kubernetes.client.CoordinationV1Api:
    config = kubernetes.client.Configuration()
    config.host = url
    return kubernetes.client.CoordinationV1Api(kubernetes.client.ApiClient(config))


class Candidate:
    """An elector that records when it stopped leading instead of exiting the process."""

    def __init__(self, url: str, me: str, lease: str = LEASE) -> None:
        self.lost_at: float | None = None
        self.acquired_at: float | None = None
        self.elector = Elector(coordination(url), NAMESPACE, lease, me, TIMING, self._lost)
        self._thread: threading.Thread | None = None

    def _lost(self, _reason: str) -> None:
        self.lost_at = time.monotonic()

    def acquire_in_background(self) -> Candidate:
        def run() -> None:
            if self.elector.acquire():
                self.acquired_at = time.monotonic()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.elector.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)


@pytest.fixture
def candidates(cluster: Cluster) -> Iterator[list[Candidate]]:
    made: list[Candidate] = []
    yield made
    for candidate in made:
        candidate.stop()


def put_lease(cluster: Cluster, name: str, holder: str, renew_time: str) -> None:
    body: dict[str, Any] = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": TIMING.lease_seconds,
            "renewTime": renew_time,
        },
    }
    coordination(cluster.url).create_namespaced_lease(NAMESPACE, body)


def test_a_standby_acts_only_a_lease_after_the_last_renew_and_after_the_leader_stopped(
    cluster: Cluster, candidates: list[Candidate]
) -> None:
    leader = Candidate(cluster.url, "a_1")
    candidates.append(leader)
    assert leader.elector.acquire()
    standby = Candidate(cluster.url, "b_1").acquire_in_background()
    candidates.append(standby)
    time.sleep(2 * TIMING.lease_seconds)
    assert standby.acquired_at is None  # renewed every retry period: never expires
    leader.elector.stop()  # frozen: no more renews, and no watchdog to stop it either
    frozen = time.monotonic()
    wait_for(lambda: standby.acquired_at, timeout=10, what="the standby to take over")
    assert standby.acquired_at is not None
    took = standby.acquired_at - frozen
    assert took >= TIMING.lease_seconds - TIMING.retry_seconds - 0.1
    # By its own clock, the frozen leader's renew deadline passed before that.
    assert not leader.elector.leading()
    assert standby.elector.leading()


@pytest.mark.parametrize("skew", ["2020-01-01T00:00:00.000000Z", "2099-01-01T00:00:00.000000Z"])
def test_a_standby_judges_expiry_by_its_own_clock_not_the_renew_time_written(
    cluster: Cluster, candidates: list[Candidate], skew: str
) -> None:
    # A leader whose wall clock is years off wrote this renewTime: compared with the standby's
    # clock it would read as expired long ago (or valid for decades).
    put_lease(cluster, "skewed", "skewed_1", skew)
    started = time.monotonic()
    standby = Candidate(cluster.url, "b_1", lease="skewed").acquire_in_background()
    candidates.append(standby)
    wait_for(lambda: standby.acquired_at, timeout=10, what="the standby to take over")
    assert standby.acquired_at is not None
    assert TIMING.lease_seconds <= standby.acquired_at - started < TIMING.lease_seconds + 2


@pytest.mark.parametrize("lease_exists", [False, True])
def test_of_candidates_racing_for_the_lease_exactly_one_wins(
    cluster: Cluster, candidates: list[Candidate], lease_exists: bool
) -> None:
    contenders = [Candidate(cluster.url, f"c{i}_1") for i in range(5)]
    candidates.extend(contenders)
    if lease_exists:  # held by a replica that died: each must see it unchanged for a lease
        put_lease(cluster, LEASE, "dead_1", "2026-01-01T00:00:00.000000Z")
        for contender in contenders:
            assert not contender.elector.try_acquire_or_renew()
        time.sleep(TIMING.lease_seconds + 0.1)
    start = threading.Barrier(len(contenders))
    won: list[bool] = [False] * len(contenders)

    def attempt(i: int) -> None:
        start.wait()
        won[i] = contenders[i].elector.try_acquire_or_renew()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(contenders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sum(won) == 1


def test_a_leader_cut_off_from_the_api_stops_before_the_standby_takes_over(
    cluster: Cluster, candidates: list[Candidate]
) -> None:
    with FaultProxy(cluster.url) as proxy:
        leader = Candidate(proxy.url, "a_1")
        candidates.append(leader)
        assert leader.elector.acquire()
        standby = Candidate(cluster.url, "b_1").acquire_in_background()
        candidates.append(standby)
        time.sleep(1)
        proxy.outage(30)
        cut = time.monotonic()
        wait_for(lambda: standby.acquired_at, timeout=10, what="the standby to take over")
    assert leader.lost_at is not None and standby.acquired_at is not None
    assert leader.lost_at - cut <= TIMING.renew_deadline_seconds + 0.1
    assert leader.lost_at < standby.acquired_at


class FakeRest:
    """A REST client's ``request``, recording what went out."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def request(self, method: str, url: str, **_: Any) -> str:
        self.sent.append(method)
        return "ok"


def test_no_write_leaves_a_replica_whose_renew_deadline_has_passed(cluster: Cluster) -> None:
    now = [1000.0]
    lost: list[str] = []
    elector = Elector(
        coordination(cluster.url), NAMESPACE, LEASE, "a_1", TIMING, lost.append, lambda: now[0]
    )
    rest = FakeRest()
    leadership.guard_writes(rest)
    leadership.install(elector)
    try:
        assert elector.try_acquire_or_renew()
        rest.request("POST", "/runs")
        now[0] += TIMING.renew_deadline_seconds  # frozen, and resumed: the deadline is gone
        rest.request("GET", "/runs")  # reads are harmless
        with pytest.raises(NotLeading):
            rest.request("POST", "/runs")
        with pytest.raises(NotLeading):
            rest.request("PATCH", "/retrainpolicies/churn/status")
    finally:
        leadership.install(None)
    assert rest.sent == ["POST", "GET"]
    assert len(lost) == 1 and "renew deadline" in lost[0]


def test_timings_where_a_leader_could_outlive_its_lease_are_refused() -> None:
    with pytest.raises(ValueError, match="renew deadline < lease duration"):
        Timing(lease_seconds=10, renew_deadline_seconds=10, retry_seconds=2)
    with pytest.raises(ValueError, match="retry period < renew deadline"):
        Timing(lease_seconds=15, renew_deadline_seconds=2, retry_seconds=2)
