"""Suite-wide: every AWS client any test creates, in this process or a child, is strict.

See ``tests/strict_aws/sitecustomize.py``: requests are checked against botocore's service model
the way the real service checks them, so a lenient fake (moto, Stubber) cannot hide a request
that AWS would refuse.
"""

import functools
import importlib.util
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

_STRICT = Path(__file__).parent / "strict_aws"
# Child processes run it at start-up, from the front of their PYTHONPATH.
os.environ["PYTHONPATH"] = os.pathsep.join(
    part for part in (str(_STRICT), os.environ.get("PYTHONPATH", "")) if part
)
# The suite's pipeline runs are not tracked: recording costs each train task seconds (importing
# mlflow, opening a store). The tracking tests turn it on (tests/tracking, and the tracked runs in
# tests/training/test_tracking.py and tests/tuning/test_run_tuning.py).
os.environ.setdefault("FLYWHEEL_TRACKING", "off")
# This process started before that, and may already have another sitecustomize: load ours by path.
_spec = importlib.util.spec_from_file_location("flywheel_strict_aws", _STRICT / "sitecustomize.py")
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on a free port of 127.0.0.1 for the whole session; yields its endpoint URL."""
    # The server's access log is noise, and werkzeug would bind it to whichever test's stderr
    # was open first; the tests read stderr for the one line a user sees.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_s3(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Any]:
    """Point AWS clients, in this process and in every task it starts, at the session's moto
    server with fake keys; call it with a bucket name to make that bucket and get an S3 client."""
    import boto3

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_server,
    }.items():
        monkeypatch.setenv(name, value)

    def bucket(name: str) -> Any:
        client = boto3.client("s3")
        if name not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
            client.create_bucket(Bucket=name)
        return client

    return bucket


@pytest.fixture
def one_script_job(tmp_path: Path) -> Callable[..., Any]:
    """Call it as ``one_script_job(script, job_name=..., rows=..., files=..., environment=...)``:
    a training job of one script (plus ``files`` beside it) on a one-file ``train`` channel."""
    return functools.partial(_one_script_job, tmp_path)


def _one_script_job(
    tmp_path: Path,
    script: str,
    *,
    job_name: str,
    rows: str = "id,x,y\n1,2,3\n",
    files: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
) -> Any:
    from flywheel.components.compute.backend import TrainingJobSpec

    code = tmp_path / "code"
    code.mkdir()
    for name, text in {"train.py": script, **(files or {})}.items():
        (code / name).write_text(text)
    data = tmp_path / "data.csv"
    data.write_text(rows)
    return TrainingJobSpec(
        job_name=job_name,
        source_dir=str(code),
        entry_point="train.py",
        channels={"train": str(data)},
        hyperparameters={},
        output_location=str(tmp_path / "out"),
        environment=dict(environment or {}),
    )


@dataclass(frozen=True)
class TrainedOnSplit:
    """What the training pipeline's first two steps leave: the split and the trained model."""

    train: Path
    test: Path
    model: Path
    metrics: Mapping[str, float]


TrainOnSplit = Callable[..., TrainedOnSplit]


@pytest.fixture
def train_on_split(tmp_path: Path) -> TrainOnSplit:
    """Prepare ``source`` and train on its split, as the pipeline's prepare and train steps do.

    Call it as ``train_on_split(workload_path, source, compute=..., hyperparameters=...,
    channels=..., test_fraction=..., seed=..., log=...)``; files go under the test's ``tmp_path``.
    """
    from flywheel.components.steps.prepare import prepare_data
    from flywheel.components.steps.train import train_model

    def train(
        workload_path: Path | str,
        source: Path | str,
        *,
        compute: str = "local",
        compute_config: Mapping[str, object] | None = None,
        hyperparameters: Mapping[str, object] | None = None,
        channels: Mapping[str, str] | None = None,
        test_fraction: float = 0.2,
        seed: int = 7,
        log: Callable[[str], None] = lambda _: None,
    ) -> TrainedOnSplit:
        paths = {name: tmp_path / name for name in ("train", "test", "batches", "model.tar.gz")}
        prepare_data(
            source=str(source),
            workload_path=str(workload_path),
            batch_count=1,
            training_batches=1,
            test_fraction=test_fraction,
            seed=seed,
            order_by="",
            train_path=paths["train"],
            test_path=paths["test"],
            batches_dir=paths["batches"],
        )
        trained = train_model(
            workload_path=str(workload_path),
            compute=compute,
            compute_config=compute_config,
            hyperparameters=hyperparameters or {},
            train_path=paths["train"],
            test_path=paths["test"],
            model_path=paths["model.tar.gz"],
            brought_channels=channels,
            log=log,
        )
        return TrainedOnSplit(
            paths["train"], paths["test"], paths["model.tar.gz"], trained.training_metrics
        )

    return train


@pytest.fixture
def run_training(tmp_path: Path) -> Callable[..., int]:
    """``flywheel run training`` in this process, its home, registry and runs under ``tmp_path``.

    Call it as ``run_training(workload_path, source, *more_options)``; returns the exit status.
    The registry is ``tmp_path / "registry"``.
    """
    from flywheel.pipelines.cli import main

    def run(workload_path: Path | str, source: Path | str, *options: str) -> int:
        return main(
            [
                "--home",
                str(tmp_path / "home"),
                "run",
                "training",
                "--workload",
                str(workload_path),
                "--source",
                str(source),
                *options,
                "--registry",
                str(tmp_path / "registry"),
                "--pipeline-root",
                str(tmp_path / "runs"),
            ]
        )

    return run


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    """A real ``mlflow server`` on a free port of 127.0.0.1 for the session, with a SQLite store;
    yields its URL, or None where mlflow is not installed (the dev extra installs it).

    One worker and no job runner: a tracking store is all the tests need, and each extra process
    costs seconds of start-up on a loaded machine.
    """
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    if importlib.util.find_spec("mlflow") is None:
        yield None
        return
    root = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    # The server and its uvicorn worker share a session, so one signal stops both.
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"),
            *("--port", str(port), "--workers", "1"),
            *("--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"),
            *("--default-artifact-root", str(root / "artifacts")),
        ],
        stdout=(root / "server.log").open("w"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError((root / "server.log").read_text()[-3000:]) from None
            time.sleep(0.5)
    try:
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.fixture
def chat_webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A Slack-compatible webhook on 127.0.0.1: its URL, and what was posted to it."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()
