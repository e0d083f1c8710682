"""Exactly once, with real processes: a tuning step is killed mid-poll, fails or is cancelled
against a SageMaker that keeps its tuning job running, then retried."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from .conftest import ROLE
from .retry_harness import BUCKET, IMAGE, Attempt, Aws, launch

TUNE_STEP = Path(__file__).with_name("tune_step_process.py")
CREATE = "CreateHyperParameterTuningJob"
DESCRIBE = "DescribeHyperParameterTuningJob"


def tune_step(aws: Aws, folder: Path, attempt: int) -> Attempt:
    compute = {"role_arn": ROLE, "s3_prefix": f"s3://{BUCKET}/flywheel", "image_uri": IMAGE}
    arguments = [json.dumps(compute), str(folder / "result.json")]
    return launch(aws, TUNE_STEP, arguments, folder / f"attempt-{attempt}.log")


def test_sigkill_mid_poll_then_retry_creates_exactly_one_tuning_job(aws, tmp_path):
    fake = aws.sagemaker
    first = tune_step(aws, tmp_path, 1)
    fake.wait_for(lambda: len(fake.names(DESCRIBE)) >= 3)  # created, then polling
    first.process.send_signal(signal.SIGKILL)
    first.wait()
    (name,) = fake.names(CREATE)
    polls_before = len(fake.names(DESCRIBE))

    second = tune_step(aws, tmp_path, 2)
    fake.wait_for(lambda: len(fake.names(DESCRIBE)) > polls_before + 1)
    fake.finish(name, "Completed")

    assert second.wait() == 0, second.output
    assert fake.names(CREATE) == [name]
    assert len(name) <= 32 - len("-a99")
    assert f"[{name}] hyperparametertuning job exists (InProgress): reattaching" in second.output
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["tuning_job_name"] == name
    assert result["best_training_job"] == f"{name}-001-0a1b2c3d"
    assert result["model_uri"].endswith(f"/{name}-001-0a1b2c3d/output/model.tar.gz")
    assert [trial["name"] for trial in result["trials"]] == [result["best_training_job"]]


def test_failed_tuning_job_then_retry_creates_the_next_attempt(aws, tmp_path):
    fake = aws.sagemaker
    first = tune_step(aws, tmp_path, 1)
    fake.wait_for(lambda: bool(fake.names(CREATE)))
    (name,) = fake.names(CREATE)
    fake.finish(name, "Failed", "All training jobs failed")
    assert first.wait() == 1
    assert "All training jobs failed" in first.output

    second = tune_step(aws, tmp_path, 2)
    fake.wait_for(lambda: len(fake.names(CREATE)) == 2)
    fake.finish(f"{name}-a2", "Completed")

    assert second.wait() == 0, second.output
    assert fake.names(CREATE) == [name, f"{name}-a2"]
    assert f"tuned {name}-a2" in second.output


def test_sigterm_stops_the_tuning_job(aws, tmp_path):
    fake = aws.sagemaker
    step = tune_step(aws, tmp_path, 1)
    fake.wait_for(lambda: len(fake.names(DESCRIBE)) >= 2)
    step.process.send_signal(signal.SIGTERM)

    assert step.wait() == 1
    (name,) = fake.names(CREATE)
    assert fake.names("StopHyperParameterTuningJob") == [name]
    assert fake.jobs[name]["status"] == "Stopped"
    assert "step cancelled" in step.output
