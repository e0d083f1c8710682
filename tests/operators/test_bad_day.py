"""The operator on a bad day: runs deleted in KFP, clock steps, hung and refused KFP calls,
deletion racing a create, nonces written faster than they are read, a reverted pipeline version.

Where a claim is about the operator as deployed (a deleted run, a stepped clock) it runs as a
real process behind the fault proxies; the rest run kopf in a thread, with KFP or the API server
behind a :class:`FaultProxy`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fault_proxy import FaultProxy
from operator_harness import (
    NAMESPACE,
    REGION,
    Cluster,
    OperatorProcess,
    OperatorThread,
    aws_client,
    wait_for,
)

from flywheel.operators.clock import StepWatch
from flywheel.operators.decision import parse_ts
from flywheel.operators.emulator import CRD_DIR, EmulatorThread, write_kubeconfig
from flywheel.operators.kfp_runs import RunLauncher, connect
from flywheel.operators.kfp_standin import KfpStandIn
from flywheel.operators.launching import launch_error, may_try
from flywheel.operators.policy import GROUP, PLURAL, VERSION, parse_policy
from flywheel.operators.poller import Services, seconds_until_due

NONCE = "flywheel.dev/run-nonce"
MANUAL = {"name": "by-hand", "manual": {}}
KFP_CRDS = Path(__file__).resolve().parents[1] / "deploy" / "kfp-crds" / "2.14.0-2.16.1"
PV = ("pipelines.kubeflow.org", "v2beta1", NAMESPACE, "pipelineversions")


def spec(*triggers: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "pipeline": {"name": "train", "parameters": {"reason": "{{ reason }}"}},
        "triggers": list(triggers),
        **fields,
    }


def launched(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    return [e for e in cluster.status(name).get("active") or [] if e.get("runId")]


def wait_for_ready(cluster: Cluster, name: str, timeout: float = 30) -> None:
    wait_for(
        lambda: cluster.condition(name, "Ready").get("status") == "True",
        timeout=timeout,
        what="Ready",
    )


def reasons_of_runs(kfp: KfpStandIn) -> list[str]:
    with kfp.lock:
        return sorted(r["runtime_config"]["parameters"]["reason"] for r in kfp.runs.values())


@pytest.fixture
def start_through(start_operator: Callable[..., OperatorThread]) -> Callable[[str], OperatorThread]:
    """Start kopf in a thread with KFP at the URL given (a fault proxy's)."""
    return start_operator


class Process:
    """One operator process, reaching the cluster and KFP through fault proxies, with a clock
    that the test can step (``FLYWHEEL_CLOCK_OFFSET_FILE``)."""

    def __init__(self, cluster: Cluster, kfp: KfpStandIn, aws: str, tmp_path: Path) -> None:
        self.kube = FaultProxy(cluster.url).__enter__()
        self.kfp = FaultProxy(kfp.url).__enter__()
        self.offset = tmp_path / "clock-offset"
        self.offset.write_text("0")
        kubeconfig = write_kubeconfig(tmp_path / "proxied-kubeconfig", self.kube.url, NAMESPACE)
        env = {
            "KUBECONFIG": str(kubeconfig),
            "KF_PIPELINES_ENDPOINT": self.kfp.url,
            "FLYWHEEL_TICK_SECONDS": "0.5",
            "FLYWHEEL_CLOCK_OFFSET_FILE": str(self.offset),
            "AWS_ENDPOINT_URL": aws,
            "AWS_DEFAULT_REGION": REGION,
        }
        self.operator = OperatorProcess("replica-a", env, tmp_path)

    def step_clock(self, seconds: float) -> None:
        self.offset.write_text(str(float(self.offset.read_text()) + seconds))

    def close(self) -> None:
        self.operator.stop()
        print(f"---- operator ----\n{self.operator.output()[-6000:]}")
        self.kfp.__exit__()
        self.kube.__exit__()


@pytest.fixture
def process(cluster: Cluster, kfp_api: KfpStandIn, aws: str, tmp_path: Path) -> Iterator[Process]:
    started = Process(cluster, kfp_api, aws, tmp_path)
    try:
        yield started
    finally:
        started.close()


# -- a run deleted in KFP -----------------------------------------------------------------------


def test_a_run_deleted_in_kfp_is_recorded_as_gone_and_the_policy_moves_on(
    cluster: Cluster, kfp_api: KfpStandIn, process: Process
) -> None:
    cluster.apply("churn", spec(MANUAL, concurrencyPolicy="Forbid"))
    wait_for_ready(cluster, "churn", timeout=60)
    cluster.annotate("churn", NONCE, "first")
    (entry,) = wait_for(lambda: launched(cluster, "churn"), what="the first run")
    with kfp_api.lock:
        del kfp_api.runs[entry["runId"]]
    wait_for(
        lambda: (
            not cluster.status("churn").get("active")
            and [r["state"] for r in cluster.status("churn").get("recentRuns") or []] == ["Deleted"]
        ),
        what="the deleted run to be recorded as gone",
    )
    assert cluster.condition("churn", "Running")["status"] == "False"
    assert cluster.condition("churn", "Ready")["status"] == "True"
    wait_for(lambda: "RunDeleted" in cluster.event_reasons("churn"), what="a RunDeleted event")
    cluster.annotate("churn", NONCE, "second")
    (again,) = wait_for(lambda: launched(cluster, "churn"), what="a run after the deletion")
    assert again["runId"] != entry["runId"]
    assert reasons_of_runs(kfp_api) == ["manual nonce second"]


# -- clock steps --------------------------------------------------------------------------------


def test_clock_steps_of_an_hour_either_way_stop_no_source_and_no_schedule(
    cluster: Cluster, aws: str, process: Process
) -> None:
    metric = {
        "name": "drift",
        "metric": {
            "cloudWatch": {"namespace": "Flywheel", "metricName": "RMSE", "periodSeconds": 1},
            "comparator": "GreaterThanThreshold",
            "threshold": 0.5,
        },
    }
    every_minute = {"name": "minutely", "schedule": {"cron": "* * * * *"}}
    cluster.apply("sourced", spec(metric))
    cluster.apply("scheduled", spec(every_minute))
    wait_for_ready(cluster, "sourced", timeout=60)
    wait_for_ready(cluster, "scheduled", timeout=60)

    def read_at() -> datetime:
        seen = cluster.status("sourced")["observations"]["triggers"]["drift"]
        return parse_ts(seen["evaluatedAt"]) or datetime.min.replace(tzinfo=UTC)

    def next_slot() -> datetime:
        return parse_ts(cluster.status("scheduled").get("nextScheduleTime")) or datetime.min

    for step in (3600, -3600):  # forward an hour, then back to the true time
        process.step_clock(step)
        clock = datetime.now(tz=UTC) + timedelta(seconds=float(process.offset.read_text()))
        wait_for(
            lambda c=clock: abs((read_at() - c).total_seconds()) < 30,
            timeout=15,
            what=f"a source reading on the clock stepped {step:+d} s",
        )
        wait_for(
            lambda c=clock: timedelta(0) < next_slot() - c <= timedelta(seconds=61),
            timeout=15,
            what=f"the next schedule slot on the clock stepped {step:+d} s",
        )


def test_a_source_read_before_a_backward_clock_step_is_due_at_once() -> None:
    policy = parse_policy(
        {
            "pipeline": {"name": "train"},
            "triggers": [
                {
                    "name": "drift",
                    "metric": {
                        "cloudWatch": {"namespace": "N", "metricName": "M", "periodSeconds": 60},
                        "comparator": "GreaterThanThreshold",
                        "threshold": 1,
                    },
                }
            ],
        }
    )
    now = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
    read = {"drift": {"evaluatedAt": "2026-03-02T11:00:00Z", "values": [0.1]}}  # an hour ahead
    status = {"observedGeneration": 1, "observations": {"pipeline": {"ok": True}, "triggers": read}}
    assert seconds_until_due(policy, status, generation=1, now=now, tick=10) == 1  # tick / 10


def test_a_step_of_the_wall_clock_is_noticed_and_a_steady_clock_is_not() -> None:
    offset = [0.0]
    watch = StepWatch(lambda: datetime.now(tz=UTC) + timedelta(seconds=offset[0]))
    assert not watch.check()
    assert not watch.check()
    offset[0] = -3600
    assert watch.check() and watch.steps == 1
    assert not watch.check()


# -- many breaches together ---------------------------------------------------------------------


def test_calls_of_many_policies_run_concurrently_not_one_after_another() -> None:
    # A hundred breaches together each need their writes; a pool of 4 made them queue.
    services = Services(launcher=None, aws_client=None, clock=lambda: datetime.now(tz=UTC))  # type: ignore[arg-type]
    together = threading.Barrier(16, timeout=5)

    def write(policy: str) -> str:
        together.wait()
        return policy

    async def scenario() -> list[str]:
        calls = [services.call("kube", f"policy-{i}", write, f"policy-{i}") for i in range(16)]
        return list(await asyncio.gather(*calls))

    try:
        assert len(asyncio.run(scenario())) == 16
    finally:
        services.close()


def test_a_hung_kfp_call_never_holds_the_policys_kubernetes_writes() -> None:
    services = Services(launcher=None, aws_client=None, clock=lambda: datetime.now(tz=UTC))  # type: ignore[arg-type]
    release = threading.Event()

    async def scenario() -> str:
        hung = [
            asyncio.create_task(services.call("kfp", "churn", release.wait, 10)) for _ in range(3)
        ]
        await asyncio.sleep(0.1)
        written = await asyncio.wait_for(services.call("kube", "churn", lambda: "written"), 2)
        release.set()
        await asyncio.gather(*hung)
        return written

    try:
        assert asyncio.run(scenario()) == "written"
    finally:
        services.close()


# -- hung, refused and late KFP calls -----------------------------------------------------------


def test_a_hung_kfp_call_never_delays_another_trigger_of_the_same_policy(
    cluster: Cluster, kfp_api: KfpStandIn, start_through: Callable[[str], OperatorThread]
) -> None:
    with FaultProxy(kfp_api.url) as kfp:
        hung = kfp.inject("POST", r"/runs$", hang=True)  # the first create never answers
        start_through(kfp.url)
        cluster.apply("churn", spec(MANUAL, concurrencyPolicy="Allow"))
        wait_for_ready(cluster, "churn")
        cluster.annotate("churn", NONCE, "stuck")
        wait_for(lambda: hung.hits == 1, what="the hung create")
        cluster.annotate("churn", NONCE, "next")
        wait_for(lambda: kfp_api.runs, timeout=5, what="the next nonce's run, despite the hang")
        assert reasons_of_runs(kfp_api) == ["manual nonce next"]


def test_a_create_kfp_refuses_is_reported_backs_off_and_is_retried_on_a_spec_change(
    cluster: Cluster, kfp_api: KfpStandIn, start_through: Callable[[str], OperatorThread]
) -> None:
    with FaultProxy(kfp_api.url) as kfp:
        refused = kfp.inject("POST", r"/runs$", status=403, times=1000)
        start_through(kfp.url)
        cluster.apply("churn", spec(MANUAL))
        wait_for_ready(cluster, "churn")
        cluster.annotate("churn", NONCE, "please")
        created = wait_for(
            lambda: (
                cluster.condition("churn", "RunCreated").get("reason") == "KfpRefused"
                and cluster.condition("churn", "RunCreated")
            ),
            what="RunCreated=False KfpRefused",
        )
        assert created["status"] == "False" and "403" in created["message"]
        wait_for(lambda: "KfpRefused" in cluster.event_reasons("churn"), what="a KfpRefused event")
        time.sleep(3)  # ten ticks: a refused create is not sent again every tick
        assert refused.hits == 1
        refused.times = refused.hits  # whatever was wrong is fixed along with the spec
        cluster.api.patch_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, "churn", {"spec": {"pipeline": {"experiment": "x"}}}
        )
        wait_for(lambda: launched(cluster, "churn"), timeout=5, what="the run after the fix")
        wait_for(
            lambda: cluster.condition("churn", "RunCreated").get("status") == "True",
            what="RunCreated=True",
        )


def test_a_refused_create_backs_off_doubling_and_a_spec_change_retries_at_once() -> None:
    class Forbidden(Exception):
        status = 403

    now = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
    first = launch_error(Forbidden(), "Forbidden", now, 1, None)
    assert (first["reason"], first["attempts"], first["retryTime"]) == (
        "KfpRefused",
        1,
        "2026-03-02T10:00:10Z",
    )
    second = launch_error(Forbidden(), "Forbidden", now, 1, first)
    assert (second["attempts"], second["retryTime"]) == (2, "2026-03-02T10:00:20Z")
    assert not may_try(second, now + timedelta(seconds=19), 1)
    assert may_try(second, now + timedelta(seconds=20), 1)
    assert may_try(second, now, 2)  # the spec changed
    unreachable = launch_error(TimeoutError(), "timed out", now, 1, second)
    assert unreachable["reason"] == "KfpUnreachable" and may_try(unreachable, now, 1)


def test_with_orphan_no_run_is_created_once_deletion_began(
    cluster: Cluster, kfp_api: KfpStandIn, start_through: Callable[[str], OperatorThread]
) -> None:
    with FaultProxy(kfp_api.url) as kfp:
        # The first create fails; the retry looks the run up first, slowly.
        kfp.inject("POST", r"/runs$", status=500)
        lookup = kfp.inject("GET", r"/runs$", delay=2.0)
        start_through(kfp.url)
        cluster.apply("churn", spec(MANUAL, deletionPolicy="Orphan"))
        wait_for_ready(cluster, "churn")
        cluster.annotate("churn", NONCE, "late")
        wait_for(lambda: lookup.hits == 1, what="the lookup before the second create")
        cluster.api.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "churn")
        wait_for(
            lambda: (
                "churn"
                not in {
                    o["metadata"]["name"]
                    for o in cluster.api.list_namespaced_custom_object(
                        GROUP, VERSION, NAMESPACE, PLURAL
                    )["items"]
                }
            ),
            what="the policy to be gone",
        )
        time.sleep(3)
        assert kfp_api.create_calls == 0


# -- nonces -------------------------------------------------------------------------------------


def test_nonces_written_faster_than_they_are_read_each_get_a_run(
    cluster: Cluster,
    kfp_api: KfpStandIn,
    start_operator: Callable[[], OperatorThread],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    with FaultProxy(cluster.url) as kube:
        # Every decision's write is slow: annotations outpace the operator's reads.
        kube.inject("PATCH", r"/retrainpolicies/churn/status$", delay=0.3, times=1000)
        kubeconfig = write_kubeconfig(tmp_path / "proxied", kube.url, NAMESPACE)
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        operator = start_operator()
        try:
            cluster.apply("churn", spec(MANUAL, concurrencyPolicy="Allow"))
            wait_for_ready(cluster, "churn")
            for i in range(10):
                cluster.annotate("churn", NONCE, f"n{i}")
            wait_for(lambda: len(kfp_api.runs) >= 10, timeout=30, what="a run per nonce")
            time.sleep(1)
            assert reasons_of_runs(kfp_api) == sorted(f"manual nonce n{i}" for i in range(10))
        finally:
            operator.stop()  # while the proxy it talks through is still there


# -- a reverted pipeline version ----------------------------------------------------------------


@pytest.fixture
def kfp_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Cluster]:
    """The emulator serving the project's CRDs and KFP's PipelineVersion, as with KFP 2.17 in
    Kubernetes-native mode; the operator watches versions in ``KFP_NAMESPACE``."""
    files = [
        *sorted(CRD_DIR.glob("*.yaml")),
        KFP_CRDS / "pipelines.kubeflow.org_pipelineversions.yaml",
    ]
    with EmulatorThread(NAMESPACE, crd_files=files) as emulator:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", emulator.url, NAMESPACE)
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.setenv("KFP_NAMESPACE", NAMESPACE)
        yield Cluster(emulator.url)


def pipeline_version(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "pipelines.kubeflow.org/v2beta1",
        "kind": "PipelineVersion",
        "metadata": {"name": name},
        "spec": {"pipelineName": "demo", "displayName": name, "pipelineSpec": {"v": name}},
    }


def test_a_pipeline_version_replaced_by_a_sync_is_looked_up_on_its_watch_event(
    kfp_cluster: Cluster,
    kfp_api: KfpStandIn,
    aws: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # A revert in git makes Argo CD prune a version and create it again: same name, new id.
    pins = tmp_path / "versions.json"
    pins.write_text('{"demo": "demo-v1"}')
    monkeypatch.setenv("FLYWHEEL_PIPELINE_VERSIONS", str(pins))
    kfp_api.sync_pipeline("demo", [("demo-v1", {"v": 1})])
    kfp_cluster.api.create_namespaced_custom_object(*PV, pipeline_version("demo-v1"))
    services = Services(
        launcher=RunLauncher(connect(kfp_api.url, namespace=NAMESPACE), NAMESPACE),
        aws_client=lambda service, _region: aws_client(aws, service),
        clock=lambda: datetime.now(tz=UTC),
    )
    operator = OperatorThread(services).start()
    try:
        kfp_cluster.apply("churn", {"pipeline": {"name": "demo"}, "triggers": [MANUAL]})
        wait_for_ready(kfp_cluster, "churn")

        def version_id() -> str:
            return kfp_cluster.status("churn")["observations"]["pipeline"]["versionId"]

        before = version_id()
        kfp_api.sync_pipeline("demo", [])
        demo = kfp_api.sync_pipeline("demo", [("demo-v1", {"v": 1})])
        kfp_cluster.api.delete_namespaced_custom_object(*PV, "demo-v1")
        kfp_cluster.api.create_namespaced_custom_object(*PV, pipeline_version("demo-v1"))
        (version,) = kfp_api.versions[demo]
        wait_for(
            lambda: version_id() == version["pipeline_version_id"] != before,
            timeout=5,
            what="the new version id, looked up on the watch event (not the 300 s re-check)",
        )
    finally:
        operator.stop()
