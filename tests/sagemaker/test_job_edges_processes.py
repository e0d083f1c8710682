"""SageMaker at its edges, with real processes: deleted attempts, throttling from the first call,
and spot time-outs, against a SageMaker stand-in that keeps the real service's rules."""

from __future__ import annotations

from .retry_harness import BUCKET, failed_first_attempt, train_step


def test_a_retention_deletion_between_attempts_gives_no_duplicate_job(aws, tmp_path):
    fake = aws.sagemaker
    name, _ = failed_first_attempt(aws, tmp_path)
    second = train_step(aws, tmp_path, 2)
    fake.wait_for(lambda: len(fake.jobs) == 2)
    fake.finish(f"{name}-a2", "Completed")
    assert second.wait() == 0, second.output

    # Retention deletes the Failed attempt 1, and the service frees its name; then KFP retries.
    fake.delete(name)
    fake.purge(name)
    third = train_step(aws, tmp_path, 3)

    assert third.wait() == 0, third.output
    assert fake.names("CreateTrainingJob") == [name, f"{name}-a2"], "no job under the freed name"
    assert f"[{name}-a2] training job exists (Completed): reattaching" in third.output


def test_a_deleting_attempt_is_passed_over_for_the_next_one(aws, tmp_path):
    fake = aws.sagemaker
    name, _ = failed_first_attempt(aws, tmp_path)
    fake.delete(name)

    second = train_step(aws, tmp_path, 2)
    fake.wait_for(lambda: len(fake.jobs) == 2)
    fake.finish(f"{name}-a2", "Completed")

    assert second.wait() == 0, second.output
    assert fake.names("CreateTrainingJob") == [name, f"{name}-a2"]
    assert "attempt 1 is Deleting (deleted, its name still taken)" in second.output
    assert fake.jobs[name]["status"] == "Deleting", "never reattached to, never stopped"


def test_forty_throttles_at_the_start_give_one_job_and_success(aws, tmp_path):
    fake = aws.sagemaker
    # botocore's own retries and rate limiting (adaptive, ten attempts a call by default) come
    # first, and would make this test minutes long; here they are off, so the launcher meets all 40.
    aws.env.update(AWS_RETRY_MODE="standard", AWS_MAX_ATTEMPTS="1")
    fake.throttle(40)
    step = train_step(aws, tmp_path, 1)
    fake.wait_for(lambda: len(fake.jobs) == 1)
    (name,) = fake.jobs
    fake.finish(name, "Completed")

    assert step.wait() == 0, step.output
    assert fake.throttles == 0, "every throttled call was asked again"
    assert fake.names("CreateTrainingJob") == [name]
    assert "throttled by SageMaker" in step.output


def test_a_spot_time_out_then_retry_resumes_from_the_same_checkpoint_prefix(aws, tmp_path):
    fake = aws.sagemaker
    spot = {
        "spot": True,
        "checkpoint_s3_uri": f"s3://{BUCKET}/checkpoints",
        "max_run_seconds": 3600,
        "max_wait_seconds": 7200,
    }
    first = train_step(aws, tmp_path, 1, **spot)
    fake.wait_for(lambda: len(fake.jobs) == 1)
    (name,) = fake.jobs
    fake.finish(name, "Stopped", secondary="MaxWaitTimeExceeded")
    assert first.wait() == 1
    assert "managed spot training ran out of time (MaxWaitTimeExceeded)" in first.output
    assert "from the console" not in first.output

    second = train_step(aws, tmp_path, 2, **spot)
    fake.wait_for(lambda: len(fake.jobs) == 2)
    fake.finish(f"{name}-a2", "Completed")

    assert second.wait() == 0, second.output
    checkpoints = [fake.jobs[job]["request"]["CheckpointConfig"]["S3Uri"] for job in fake.jobs]
    assert checkpoints == [f"s3://{BUCKET}/checkpoints/{name}"] * 2
