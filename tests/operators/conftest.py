"""Fixtures for the operator: the Kubernetes emulator, the KFP stand-in, moto, and kopf itself.

Every server listens on 127.0.0.1 with a free port and is stopped by its fixture. kopf runs for
real, in a thread with its own event loop, against the emulator through a kubeconfig, the way
it runs against a cluster.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

# The poller follows runs and retries every tick; a short one keeps integration tests fast.
os.environ["FLYWHEEL_TICK_SECONDS"] = "0.3"
# Test modules import the harness by file name: an installed package named `tests` (shipped by a
# dependency into site-packages) shadows this repository's `tests` namespace package.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from moto.server import ThreadedMotoServer
from operator_harness import (
    NAMESPACE,
    REGION,
    Cluster,
    OperatorThread,
    aws_client,
)

import flywheel.operators.handlers  # noqa: F401 - registers the handlers with kopf
from flywheel.operators.emulator import EmulatorThread, write_kubeconfig
from flywheel.operators.kfp_runs import RunLauncher, connect
from flywheel.operators.kfp_standin import KfpStandIn
from flywheel.operators.poller import Services


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    with EmulatorThread(NAMESPACE) as emulator:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", emulator.url, NAMESPACE)
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        yield Cluster(emulator.url)


@pytest.fixture
def kfp_api() -> Iterator[KfpStandIn]:
    with KfpStandIn() as standin:
        standin.add_pipeline("train", "v1")
        yield standin


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto keeps its state per process, not per server: start each test from nothing.
    urllib.request.urlopen(
        urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST"), timeout=10
    ).close()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def start_operator(
    cluster: Cluster, kfp_api: KfpStandIn, aws: str
) -> Iterator[Callable[..., OperatorThread]]:
    """Start the operator (again, after a stop), with KFP at ``kfp_url`` (a fault proxy's) or the
    stand-in's; every started one is stopped at teardown."""
    started: list[OperatorThread] = []

    def start(kfp_url: str = "") -> OperatorThread:
        # Each operator gets its own clients: a restarted process shares nothing with the dead one.
        services = Services(
            launcher=RunLauncher(connect(kfp_url or kfp_api.url, namespace=NAMESPACE), NAMESPACE),
            aws_client=lambda service, _region: aws_client(aws, service),
            clock=lambda: datetime.now(tz=UTC),
        )
        operator = OperatorThread(services).start()
        started.append(operator)
        return operator

    yield start
    for operator in started:
        if operator._thread.is_alive():
            operator.stop()
