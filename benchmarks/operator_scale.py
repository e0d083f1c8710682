"""How the retraining operator scales: memory and idle CPU with 1,000 policies, trigger latency.

Runs the operator as its own process (``python -m flywheel.operators``) against the Kubernetes emulator,
the KFP stand-in and moto, all on 127.0.0.1 in this process, and prints one report:

* resident memory of the operator process with N policies (target: under 250 MB);
* its CPU use while idle, in percent of one core (target: at most 2 %);
* p50 and p95 delay from a condition becoming true to the KFP run being created, for a manual
  nonce (from the annotation write) and for metric breaches arriving together, 100 and then 500
  of them (``--breaches``; from the breaching reading landing in status, as a watch sees it)
  (target: p95 at most 1 s with 100 together);
* with a second replica started (as the chart runs two; ``--skip-failover`` leaves it out): the
  idle CPU of the acting and the standing-by replica, and the failover time: from SIGKILL of the
  acting replica to the standby creating the run for a nonce set right after the kill (target:
  under 30 s).

Usage: ``.venv/bin/python benchmarks/operator_scale.py [--policies 1000] [--samples 40]
[--breaches 100 500]``.
Not run in CI; takes a few minutes.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import kubernetes
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flywheel.operators.emulator import EmulatorThread, write_kubeconfig  # noqa: E402
from flywheel.operators.kfp_standin import KfpStandIn  # noqa: E402
from flywheel.operators.policy import GROUP, PLURAL, VERSION  # noqa: E402

NAMESPACE = "default"
NONCE = "flywheel.dev/run-nonce"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def policy(name: str, *triggers: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RetrainPolicy",
        "metadata": {"name": name},
        "spec": {
            "pipeline": {"name": "train"},
            "concurrencyPolicy": "Allow",
            "triggers": list(triggers),
        },
    }


MANUAL = {"name": "by-hand", "manual": {}}
NIGHTLY = {"name": "nightly", "schedule": {"cron": "0 3 * * *"}}


def metric_trigger(model: str) -> dict[str, Any]:
    return {
        "name": "drift",
        "metric": {
            "cloudWatch": {
                "namespace": "Bench",
                "metricName": "RMSE",
                "statistic": "Maximum",
                "dimensions": {"Model": model},
                "periodSeconds": 60,
            },
            "comparator": "GreaterThanThreshold",
            "threshold": 0.5,
            "evaluationPeriods": 3,
            "datapointsToAlarm": 1,
        },
    }


def run_started(kfp: KfpStandIn, policy_name: str) -> list[float]:
    """When the stand-in created runs of this policy (its monotonic clock, same process)."""
    with kfp.lock:
        return [
            r["_started"]
            for r in kfp.runs.values()
            if r["display_name"].startswith(f"{policy_name}-")
        ]


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=20, method="inclusive")
    return statistics.median(samples), cuts[18]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=40, help="nonce latency samples")
    parser.add_argument(
        "--breaches",
        type=int,
        nargs="+",
        default=[100, 500],
        help="sizes of the groups of metric policies that breach together, one group at a time",
    )
    parser.add_argument("--idle-seconds", type=float, default=30)
    parser.add_argument(
        "--skip-failover", action="store_true", help="measure one replica only (faster)"
    )
    parser.add_argument(
        "--operator-log",
        type=Path,
        default=None,
        help="write the operator's log here (default: discard)",
    )
    args = parser.parse_args()

    # moto's access log (one line per request) would bury the report.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    aws_env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    cloudwatch = boto3.client(
        "cloudwatch",
        region_name="us-east-1",
        endpoint_url=aws_env["AWS_ENDPOINT_URL"],
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            EmulatorThread(NAMESPACE) as cluster,
            KfpStandIn() as kfp,
        ):
            kfp.add_pipeline("train", "v1")
            kubeconfig = write_kubeconfig(Path(tmp) / "kubeconfig", cluster.url)
            config = kubernetes.client.Configuration()
            config.host = cluster.url
            api = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(config))
            run(
                args,
                api,
                kfp,
                cloudwatch,
                {
                    **os.environ,
                    **aws_env,
                    "KUBECONFIG": str(kubeconfig),
                    # An outer PYTHONPATH first: it may hold another checkout to compare with.
                    "PYTHONPATH": os.pathsep.join(
                        filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)])
                    ),
                },
            )
    finally:
        moto.stop()


def run(
    args: argparse.Namespace, api: Any, kfp: KfpStandIn, cloudwatch: Any, env: dict[str, str]
) -> None:
    groups = [[f"metric-{g}-{i:04d}" for i in range(size)] for g, size in enumerate(args.breaches)]
    metric_names = [name for group in groups for name in group]
    idle_names = [f"policy-{i:04d}" for i in range(args.policies - len(metric_names))]
    if len(idle_names) < args.samples:
        raise SystemExit("--policies must exceed the sum of --breaches by at least --samples")
    started = time.monotonic()
    for name in idle_names:
        api.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, policy(name, MANUAL, NIGHTLY)
        )
    for name in metric_names:
        api.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, policy(name, metric_trigger(name))
        )
    print(f"created {args.policies} policies in {time.monotonic() - started:.1f}s", flush=True)

    log = args.operator_log.open("w") if args.operator_log else subprocess.DEVNULL

    def replica(name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "flywheel.operators", "-n", NAMESPACE, "--kfp-host", kfp.url],
            env={**env, "POD_ID": name},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    operator = replica("replica-a")
    standby: subprocess.Popen[bytes] | None = None
    try:
        started = time.monotonic()

        def all_ready() -> bool:
            items = api.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)["items"]
            ready = sum(
                1
                for o in items
                for c in (o.get("status") or {}).get("conditions", [])
                if c["type"] == "Ready" and c["status"] == "True"
            )
            return ready == args.policies

        wait_for(all_ready, timeout=600, what="all policies Ready", every=2)
        print(f"all policies Ready after {time.monotonic() - started:.1f}s", flush=True)
        settle([operator.pid])
        (idle_cpu,) = idle_cpu_of([operator.pid], args.idle_seconds)
        memory = rss_mb(operator.pid)

        nonce_delays = []
        for i in range(args.samples):
            name = idle_names[i * len(idle_names) // args.samples]
            written = time.monotonic()
            api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                NAMESPACE,
                PLURAL,
                name,
                {"metadata": {"annotations": {NONCE: "bench"}}},
            )
            created = wait_for(
                lambda n=name: run_started(kfp, n),
                timeout=30,
                what=f"a run for {name}",
                every=0.005,
            )
            nonce_delays.append(created[0] - written)
            time.sleep(0.2)

        # Each group's breaches at once: each policy sees its own at its next poll (up to a
        # period later; policies created together poll together); the delay counts from when
        # that reading lands in status (as a watch sees it) to the run's creation.
        landed = BreachWatch(api, metric_names)
        landed.start()
        breach_delays: dict[int, list[float]] = {}
        for group in groups:
            publish_breaches(cloudwatch, group)
            wait_for(
                lambda g=group: all(n in landed.at for n in g),
                timeout=240,
                what=f"{len(group)} metric policies to see their breach",
                every=0.1,
            )
            breach_delays[len(group)] = [
                max(
                    0.0,
                    wait_for(
                        lambda n=name: run_started(kfp, n), timeout=60, what=f"a run for {name}"
                    )[0]
                    - landed.at[name],
                )
                for name in group
            ]
        landed.stop()
        report(args, memory, idle_cpu, nonce_delays, breach_delays)
        if args.skip_failover:
            return

        standby = replica("replica-b")
        time.sleep(5)  # its start-up, then its start-up work draining
        settle([operator.pid, standby.pid])
        active_cpu, standby_cpu = idle_cpu_of([operator.pid, standby.pid], args.idle_seconds)
        operator.kill()  # SIGKILL: no goodbye in the peering object
        killed = time.monotonic()
        name = idle_names[-1]
        api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            NAMESPACE,
            PLURAL,
            name,
            {"metadata": {"annotations": {NONCE: "failover"}}},
        )
        wait_for(lambda: run_started(kfp, name), timeout=120, what="the standby's run")
        failover = time.monotonic() - killed
    finally:
        for process in (operator, standby):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=60)
    print(
        f"2 replicas, CPU at idle       {active_cpu * 100:6.2f} % acting, "
        f"{standby_cpu * 100:.2f} % standing by"
    )
    print(f"failover after SIGKILL         {failover:6.1f} s        (target < 30 s)")


def report(
    args: argparse.Namespace,
    memory: float,
    idle_cpu: float,
    nonce_delays: list[float],
    breach_delays: dict[int, list[float]],
) -> None:
    """The one-replica half of the report, printed before the failover part is measured."""
    nonce_p50, nonce_p95 = percentiles(nonce_delays)
    print()
    print(f"policies                       {args.policies}")
    print(f"operator resident memory       {memory:8.1f} MB     (target < 250 MB)")
    print(f"operator CPU at idle           {idle_cpu * 100:8.2f} %      (target <= 2 % of a core)")
    print(
        f"nonce  -> run created  p50/p95 {nonce_p50:6.3f} / {nonce_p95:6.3f} s "
        f"(n={len(nonce_delays)}, target p95 < 1 s)"
    )
    for size, delays in breach_delays.items():
        p50, p95 = percentiles(delays)
        print(
            f"breach -> run created  p50/p95 {p50:6.3f} / {p95:6.3f} s "
            f"({size} breaches together, target p95 <= 1 s)",
            flush=True,
        )


def publish_breaches(cloudwatch: Any, names: list[str]) -> None:
    """One breaching datapoint for each policy's metric, in as few calls as CloudWatch takes."""
    for start in range(0, len(names), 1000):
        cloudwatch.put_metric_data(
            Namespace="Bench",
            MetricData=[
                {
                    "MetricName": "RMSE",
                    "Value": 0.9,
                    "Timestamp": datetime.now(tz=UTC),
                    "Dimensions": [{"Name": "Model", "Value": name}],
                }
                for name in names[start : start + 1000]
            ],
        )


class BreachWatch:
    """When each metric policy's breaching reading landed in status, as a watch delivers it.

    Polling 500 objects one by one would see a landing up to a whole round of reads late.
    """

    def __init__(self, api: Any, names: list[str]) -> None:
        self.api = api
        self.names = set(names)
        self.at: dict[str, float] = {}
        self._watch = kubernetes.watch.Watch()
        self._thread = threading.Thread(target=self._run, name="breach-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._watch.stop()

    def _run(self) -> None:
        for event in self._watch.stream(
            self.api.list_namespaced_custom_object, GROUP, VERSION, NAMESPACE, PLURAL
        ):
            obj = event["object"]
            name = obj["metadata"]["name"]
            if name not in self.names or name in self.at:
                continue
            observations = (obj.get("status") or {}).get("observations") or {}
            seen = (observations.get("triggers") or {}).get("drift") or {}
            if 0.9 in (seen.get("values") or []):
                self.at[name] = time.monotonic()


def settle(pids: list[int], below: float = 0.05, limit: float = 180) -> None:
    """Wait for start-up work to drain: until each process uses under ``below`` of a core
    over 5 s (at most ``limit`` seconds, then measure anyway)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and max(idle_cpu_of(pids, 5)) >= below:
        pass


def idle_cpu_of(pids: list[int], seconds: float) -> list[float]:
    """CPU use of each process over the same idle stretch, as a fraction of one core."""
    before, wall = [cpu_seconds(pid) for pid in pids], time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - wall
    return [(cpu_seconds(pid) - b) / elapsed for pid, b in zip(pids, before, strict=True)]


if __name__ == "__main__":
    main()
