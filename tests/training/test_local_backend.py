import tarfile
from pathlib import Path

import pytest

from flywheel.components.compute.backend import TrainingJobSpec, TransformJobSpec
from flywheel.components.compute.local import LocalBackend
from flywheel.components.contract.metrics import MetricDefinition
from flywheel.components.errors import InvalidSpecError, JobFailedError


def _spec(source: Path, tmp_path: Path, **overrides) -> TrainingJobSpec:
    data = tmp_path / "data.csv"
    data.write_text("id,x,y\n1,2,3\n")
    fields = {
        "job_name": "toy-job",
        "source_dir": str(source),
        "entry_point": "train.py",
        "channels": {"train": str(data)},
        "hyperparameters": {"epochs": 2},
        "output_location": str(tmp_path / "out"),
        "metric_definitions": (MetricDefinition("loss", r"loss=([0-9.]+)"),),
    }
    return TrainingJobSpec(**{**fields, **overrides})


def _script(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "train.py").write_text(body)
    return folder


CONTRACT_SCRIPT = """
import json, os, pathlib
hps = json.loads(pathlib.Path(os.environ["SM_INPUT_CONFIG_DIR"], "hyperparameters.json").read_text())
rows = pathlib.Path(os.environ["SM_CHANNEL_TRAIN"], "data.csv").read_text().splitlines()
for epoch in range(int(hps["epochs"])):
    print(f"epoch {epoch} loss={1.0 / (epoch + 1)}")
pathlib.Path(os.environ["SM_MODEL_DIR"], "weights.txt").write_text(str(len(rows)))
"""


def test_script_sees_contract_and_model_is_packed_like_sagemaker(tmp_path: Path) -> None:
    result = LocalBackend().train(
        _spec(_script(tmp_path, CONTRACT_SCRIPT), tmp_path), log=lambda _: None
    )
    archive = Path(result.model_artifact)
    assert archive == tmp_path / "out/toy-job/output/model.tar.gz"
    with tarfile.open(archive) as tar:
        assert tar.getnames() == ["weights.txt"]
        assert tar.extractfile("weights.txt").read() == b"2"


def test_final_metric_is_the_last_value_the_script_printed(tmp_path: Path) -> None:
    result = LocalBackend().train(
        _spec(_script(tmp_path, CONTRACT_SCRIPT), tmp_path), log=lambda _: None
    )
    assert result.metrics == {"loss": 0.5}


def test_output_reaches_the_log_while_the_script_is_still_running(tmp_path: Path) -> None:
    # The script waits until the log callback has seen its first line: buffered output would hang
    # until the script's own deadline and fail the test.
    marker = tmp_path / "seen"
    script = f"""
import os, pathlib, time
print("waiting for the log", flush=True)
deadline = time.monotonic() + 20
while not pathlib.Path({str(marker)!r}).exists():
    if time.monotonic() > deadline:
        raise SystemExit("output was not streamed")
    time.sleep(0.01)
print("seen")
"""
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if line == "waiting for the log":
            marker.touch()

    LocalBackend().train(_spec(_script(tmp_path, script), tmp_path), log=log)
    assert lines.index("waiting for the log") < lines.index("seen")


def test_failure_file_is_the_reason_of_a_failed_job(tmp_path: Path) -> None:
    script = """
import os, pathlib, sys
pathlib.Path(os.environ["SM_OUTPUT_DIR"], "failure").write_text("CUDA out of memory")
sys.exit(3)
"""
    with pytest.raises(JobFailedError, match=r"exited with status 3: CUDA out of memory"):
        LocalBackend().train(_spec(_script(tmp_path, script), tmp_path), log=lambda _: None)


def test_crash_without_failure_file_reports_the_exception_line(tmp_path: Path) -> None:
    script = "raise KeyError('smiles column')\n"
    with pytest.raises(JobFailedError, match=r"status 1: KeyError: 'smiles column'"):
        LocalBackend().train(_spec(_script(tmp_path, script), tmp_path), log=lambda _: None)


def test_missing_channel_data_is_refused_before_the_script_runs(tmp_path: Path) -> None:
    spec = _spec(
        _script(tmp_path, CONTRACT_SCRIPT), tmp_path, channels={"train": str(tmp_path / "nope")}
    )
    with pytest.raises(InvalidSpecError, match=r"channels.train"):
        LocalBackend().train(spec, log=lambda _: None)


def test_transform_serves_the_model_through_the_scripts_handlers(tmp_path: Path) -> None:
    script = """
import json, os, pathlib
def model_fn(model_dir):
    return float(pathlib.Path(model_dir, "scale.txt").read_text())
def input_fn(body, content_type):
    return [float(line) for line in body.split()[1:]]
def predict_fn(values, scale):
    return [value * scale for value in values]
if __name__ == "__main__":
    pathlib.Path(os.environ["SM_MODEL_DIR"], "scale.txt").write_text("10")
"""
    backend = LocalBackend()
    trained = backend.train(_spec(_script(tmp_path, script), tmp_path), log=lambda _: None)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "a.csv").write_text("x\n1\n2\n")
    backend.transform(
        TransformJobSpec(
            job_name="toy-transform",
            model_artifact=trained.model_artifact,
            source_dir=str(tmp_path / "code"),
            entry_point="train.py",
            input_location=str(inputs),
            output_location=str(tmp_path / "scored"),
        ),
        log=lambda _: None,
    )
    assert (tmp_path / "scored/a.csv.out").read_text() == "10.0\n20.0\n"


def test_an_empty_writable_opt_ml_is_the_layout_and_is_emptied_afterwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flywheel.components.compute.local import toolkit
    from flywheel.components.compute.local.training import LocalTrainer, claim_ml_root

    # ``ml_root`` stands for a task pod's own /opt/ml volume, where no mount namespace is needed.
    monkeypatch.setattr(toolkit, "opt_ml_prefix", lambda root, view: ())
    ml_root = tmp_path / "pod-opt-ml"
    ml_root.mkdir()
    script = """
import os, pathlib
pathlib.Path(os.environ["SM_MODEL_DIR"], "where.txt").write_text(os.environ["SM_MODEL_DIR"])
"""
    result = LocalTrainer(ml_root=ml_root).train(
        _spec(_script(tmp_path, script), tmp_path), log=lambda _: None
    )
    with tarfile.open(result.model_artifact) as tar:
        assert tar.extractfile("where.txt").read().decode() == str(ml_root / "model")
    assert list(ml_root.iterdir()) == [], "the next job must find it empty"
    (ml_root / "model").mkdir()
    assert not claim_ml_root(ml_root), "a folder in use is not claimed twice"
