"""``--channel NAME=PATH_OR_S3_URI``: a channel the user already has reaches the script as it is."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from flywheel.components.compute.backend import TrainingJobSpec
from flywheel.components.compute.local import LocalBackend
from flywheel.components.contract.metrics import MetricDefinition
from flywheel.components.errors import InvalidSpecError
from flywheel.components.registry import LocalModelRegistry
from flywheel.pipelines.requests import TrainingRequest
from flywheel.pipelines.training_run import pipeline_arguments

HERE = Path(__file__).parent
# The script expects its own layout (label first, no header, mine.csv), not the split's default.
WORKLOAD = """\
name: brought
entry_point: linear.py
data: {id_column: id, feature_columns: [x1, x2], label_column: y}
hyperparameters:
  file: {type: str, default: mine.csv}
  header: {type: str, default: "false"}
  label: {type: str, default: first}
metric_definitions:
  - {name: features, regex: 'features=([0-9]+)'}
objective: {metric: rmse}
"""


def table(path: Path, *, header: bool, label_first: bool) -> Path:
    lines = ["id,x1,x2,y"] if header else []
    for i in range(30):
        x1, x2 = i % 7 - 3, i % 5 - 2
        y = 2 * x1 - x2 + 3
        lines.append(f"{y},{x1},{x2}" if label_first else f"{i},{x1},{x2},{y}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_brought_channel_replaces_the_split_and_the_run_evaluates(
    run_training: Callable[..., int], tmp_path: Path
) -> None:
    folder = tmp_path / "workload"
    folder.mkdir()
    shutil.copy(HERE / "linear.py", folder / "linear.py")
    (folder / "workload.yaml").write_text(WORKLOAD)
    mine = table(tmp_path / "mine" / "mine.csv", header=False, label_first=True)
    source = table(tmp_path / "source.csv", header=True, label_first=False)
    status = run_training(folder / "workload.yaml", source, "--channel", f"train={mine.parent}")
    assert status == 0
    (version,) = LocalModelRegistry(tmp_path / "registry").versions("brought")
    assert version.lineage["training"]["metrics"]["features"] == 2
    assert version.metrics["rmse"] < 1e-6


def test_a_missing_brought_channel_is_refused_before_anything_runs(tmp_path: Path) -> None:
    request = TrainingRequest(channels={"train": str(tmp_path / "nowhere")})
    with pytest.raises(InvalidSpecError, match=r"--channel train: .*nowhere does not exist"):
        pipeline_arguments(request)


def test_an_s3_channel_is_downloaded_into_the_layout(tmp_path: Path, monkeypatch) -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for name, value in {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="data")
        s3.put_object(Bucket="data", Key="sets/train/part-0.csv", Body=b"1,2\n3,4\n")
        code = tmp_path / "code"
        code.mkdir()
        (code / "train.py").write_text(
            "import os\n"
            "names = sorted(os.listdir(os.environ['SM_CHANNEL_TRAIN']))\n"
            "print('files=' + str(len(names)) if names == ['part-0.csv'] else names)\n"
        )
        result = LocalBackend().train(
            TrainingJobSpec(
                job_name="s3-channel",
                source_dir=str(code),
                entry_point="train.py",
                channels={"train": "s3://data/sets/train"},
                hyperparameters={},
                output_location=str(tmp_path / "out"),
                metric_definitions=(MetricDefinition("files", "files=([0-9]+)"),),
            ),
            log=lambda _: None,
        )
    finally:
        server.stop()
    assert result.metrics == {"files": 1.0}
