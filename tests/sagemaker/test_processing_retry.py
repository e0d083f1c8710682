"""Exactly once for processing jobs, with real processes: a step launching a processing job (real
packaging, real staging) is killed, fails, or is cancelled against a SageMaker that keeps jobs
running, then retried."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from .conftest import ROLE
from .fake_sagemaker import PROCESSED
from .retry_harness import BUCKET, IMAGE, Attempt, Aws, launch

DRIVER = Path(__file__).with_name("process_step_process.py")


def start(aws: Aws, folder: Path, attempt: int) -> Attempt:
    (folder / "source").mkdir(exist_ok=True)
    (folder / "source" / "preprocess.py").write_text("print('features')\n")
    (folder / "raw").mkdir(exist_ok=True)
    (folder / "raw" / "compounds.csv").write_text("compound_id,smiles\nc1,CCO\nc2,CCN\n")
    # moto keeps one S3 per process: a prefix per test keeps other tests' outputs out of this one.
    prefix = f"s3://{BUCKET}/{folder.name}"
    config = {"role_arn": ROLE, "s3_prefix": prefix, "image_uri": IMAGE}
    arguments = [str(folder), json.dumps(config)]
    return launch(aws, DRIVER, arguments, folder / f"attempt-{attempt}.log")


def test_sigkill_mid_job_then_retry_creates_exactly_one_processing_job(aws, tmp_path):
    fake = aws.sagemaker
    first = start(aws, tmp_path, 1)
    fake.wait_for(lambda: len(fake.names("DescribeProcessingJob")) >= 3)  # created, then polling
    first.process.send_signal(signal.SIGKILL)
    first.wait()
    (name,) = fake.names("CreateProcessingJob")
    polls_before = len(fake.names("DescribeProcessingJob"))

    second = start(aws, tmp_path, 2)
    fake.wait_for(lambda: len(fake.names("DescribeProcessingJob")) > polls_before + 1)
    fake.finish(name, "Completed")

    assert second.wait() == 0, second.output
    assert fake.names("CreateProcessingJob") == [name]
    assert f"[{name}] processing job exists (InProgress): reattaching" in second.output
    assert (tmp_path / "features" / "result.txt").read_bytes() == PROCESSED
    report = f"s3://{BUCKET}/{tmp_path.name}/processing/{name}/report"
    assert f'"report": "{report}"' in second.output, "an output with no destination stays on S3"


def test_failed_job_then_retry_creates_the_next_attempt_and_shows_the_exit_message(aws, tmp_path):
    fake = aws.sagemaker
    first = start(aws, tmp_path, 1)
    fake.wait_for(lambda: len(fake.jobs) == 1)
    (name,) = fake.jobs
    fake.finish(
        name,
        "Failed",
        "AlgorithmError: See job logs for more information",
        exit_message="KeyError: 'smiles' column missing",
    )
    assert first.wait() == 1
    assert "See job logs for more information" in first.output
    assert "the container said: KeyError: 'smiles' column missing" in first.output

    second = start(aws, tmp_path, 2)
    fake.wait_for(lambda: len(fake.jobs) == 2)
    fake.finish(f"{name}-a2", "Completed")

    assert second.wait() == 0, second.output
    assert fake.names("CreateProcessingJob") == [name, f"{name}-a2"]
    assert f"processed {name}-a2" in second.output, "the step reports the attempt that ran"
    assert "attempt 1 ended Failed: AlgorithmError" in second.output


def test_sigterm_mid_job_stops_the_processing_job(aws, tmp_path):
    fake = aws.sagemaker
    step = start(aws, tmp_path, 1)
    fake.wait_for(lambda: len(fake.names("DescribeProcessingJob")) >= 2)
    step.process.send_signal(signal.SIGTERM)

    assert step.wait() == 1
    (name,) = fake.names("CreateProcessingJob")
    assert fake.names("StopProcessingJob") == [name]
    assert fake.jobs[name]["status"] == "Stopped"
    assert "step cancelled" in step.output


def test_an_output_the_script_left_empty_fails_the_step_naming_it(aws, tmp_path):
    fake = aws.sagemaker
    step = start(aws, tmp_path, 1)
    fake.wait_for(lambda: len(fake.jobs) == 1)
    (name,) = fake.jobs
    fake.finish(name, "Completed", outputs={"features": {"part-0.csv": b"c1,0.1\n"}, "report": {}})

    assert step.wait() == 1
    assert "wrote nothing to output 'report' (/opt/ml/processing/output/report)" in step.output
