"""Exactly once, with real processes: the real train step (real packaging, real staging) is
killed, fails, or is cancelled against a SageMaker that keeps jobs running, then retried."""

from __future__ import annotations

import signal

from .retry_harness import failed_first_attempt, train_step


def test_sigkill_mid_poll_then_retry_creates_exactly_one_training_job(aws, tmp_path):
    fake = aws.sagemaker
    first = train_step(aws, tmp_path, 1)
    fake.wait_for(lambda: len(fake.names("DescribeTrainingJob")) >= 3)  # created, then polling
    first.process.send_signal(signal.SIGKILL)
    first.wait()
    (name,) = fake.names("CreateTrainingJob")
    polls_before = len(fake.names("DescribeTrainingJob"))

    second = train_step(aws, tmp_path, 2)
    fake.wait_for(lambda: len(fake.names("DescribeTrainingJob")) > polls_before + 1)
    fake.finish(name, "Completed")

    assert second.wait() == 0, second.output
    assert fake.names("CreateTrainingJob") == [name]
    assert f"[{name}] training job exists (InProgress): reattaching" in second.output
    assert (tmp_path / "model.tar.gz").is_file()


def test_failed_job_then_retry_creates_the_next_attempt_and_logs_why(aws, tmp_path):
    fake = aws.sagemaker
    name, first = failed_first_attempt(aws, tmp_path)
    assert "out of memory" in first.output

    second = train_step(aws, tmp_path, 2)
    fake.wait_for(lambda: len(fake.jobs) == 2)
    fake.finish(f"{name}-a2", "Completed")

    assert second.wait() == 0, second.output
    assert fake.names("CreateTrainingJob") == [name, f"{name}-a2"]
    assert f"trained {name}-a2" in second.output, "the step reports the attempt that ran"
    describes = fake.names("DescribeTrainingJob")
    assert describes.index(f"{name}-a2") < len(describes) - 1, "described before it was created"
    assert "attempt 1 ended Failed: AlgorithmError: out of memory" in second.output


def test_sigterm_during_a_slow_create_still_ends_with_the_job_stopped(aws, tmp_path):
    fake = aws.sagemaker
    fake.create_delay = 2.0
    step = train_step(aws, tmp_path, 1)
    fake.wait_for(lambda: bool(fake.names("CreateTrainingJob")))
    step.process.send_signal(signal.SIGTERM)

    assert step.wait() == 1
    (name,) = fake.names("CreateTrainingJob")
    assert fake.names("StopTrainingJob") == [name]
    assert fake.jobs[name]["status"] == "Stopped"
    assert "step cancelled" in step.output
