"""The launcher's state machine against botocore's Stubber: create or reattach, poll, stop, fail."""

from __future__ import annotations

import os
import signal

import pytest

from flywheel.components.compute.sagemaker import StepCancelledError, Watch, run_job
from flywheel.components.compute.sagemaker.jobs import TRAINING
from flywheel.components.compute.sagemaker.polling import Backoff
from flywheel.components.compute.sagemaker.throttling import ThrottledTooLongError
from flywheel.components.errors import JobFailedError

from .conftest import NOW, ROLE

NAME = "train-qsar-0123456789"
ARN = f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{NAME}"
GROUP = "/aws/sagemaker/TrainingJobs"
REQUEST = {
    "TrainingJobName": NAME,
    "AlgorithmSpecification": {"TrainingImage": "image:1", "TrainingInputMode": "File"},
    "RoleArn": ROLE,
    "OutputDataConfig": {"S3OutputPath": "s3://flywheel-test/runs/training"},
    "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
    "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
}


def description(status: str, secondary: list[tuple[str, str]] = (), **extra: object) -> dict:
    return {
        "TrainingJobName": NAME,
        "TrainingJobArn": ARN,
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary[-1][0] if secondary else "Starting",
        "SecondaryStatusTransitions": [
            {"Status": s, "StartTime": NOW, "StatusMessage": m} for s, m in secondary
        ],
        "AlgorithmSpecification": REQUEST["AlgorithmSpecification"],
        "ModelArtifacts": {
            "S3ModelArtifacts": f"s3://flywheel-test/runs/training/{NAME}/output/model.tar.gz"
        },
        "ResourceConfig": REQUEST["ResourceConfig"],
        "StoppingCondition": REQUEST["StoppingCondition"],
        "CreationTime": NOW,
        **extra,
    }


def listed(stubbed, *jobs: tuple[str, str]) -> None:
    """ListTrainingJobs by the base name: the attempts the service still knows, as (name, status)."""
    summaries = [
        {
            "TrainingJobName": name,
            "TrainingJobArn": ARN.replace(NAME, name),
            "CreationTime": NOW,
            "TrainingJobStatus": status,
        }
        for name, status in jobs
    ]
    stubbed.sagemaker.add_response(
        "list_training_jobs",
        {"TrainingJobSummaries": summaries},
        {"NameContains": NAME, "MaxResults": 100},
    )


def created(stubbed) -> None:
    """No attempt exists yet, so the step creates the job under its base name."""
    listed(stubbed)
    not_found(stubbed)
    stubbed.sagemaker.add_response("create_training_job", {"TrainingJobArn": ARN}, REQUEST)


def not_found(stubbed, name: str = NAME) -> None:
    stubbed.sagemaker.add_client_error(
        "describe_training_job",
        service_error_code="ValidationException",
        service_message="Requested resource not found.",
        expected_params={"TrainingJobName": name},
    )


def no_streams(stubbed) -> None:
    stubbed.logs.add_client_error(
        "describe_log_streams",
        service_error_code="ResourceNotFoundException",
        service_message="The specified log group does not exist.",
    )


def drained(stubbed) -> None:
    """After the job ends, the logs are read until they read empty twice in a row."""
    no_streams(stubbed)
    no_streams(stubbed)


def describe(stubbed, body: dict) -> None:
    stubbed.sagemaker.add_response("describe_training_job", body, {"TrainingJobName": NAME})


def test_training_job_streams_transitions_and_every_instance_log_page(stubbed, clock):
    created(stubbed)
    describe(stubbed, description("InProgress", [("Starting", "Launching instances")]))
    no_streams(stubbed)
    describe(
        stubbed,
        description(
            "InProgress",
            [("Starting", "Launching instances"), ("Training", "Training in progress")],
        ),
    )
    # Two instances, listed over two pages; the first stream's events over two pages.
    stubbed.logs.add_response(
        "describe_log_streams",
        {"logStreams": [{"logStreamName": f"{NAME}/algo-1-1700000000"}], "nextToken": "p2"},
        {"logGroupName": GROUP, "logStreamNamePrefix": f"{NAME}/"},
    )
    stubbed.logs.add_response(
        "describe_log_streams",
        {"logStreams": [{"logStreamName": f"{NAME}/algo-2-1700000000"}]},
        {"logGroupName": GROUP, "logStreamNamePrefix": f"{NAME}/", "nextToken": "p2"},
    )
    stream1 = {
        "logGroupName": GROUP,
        "logStreamName": f"{NAME}/algo-1-1700000000",
        "startFromHead": True,
    }
    stubbed.logs.add_response(
        "get_log_events", {"events": [{"message": "epoch 1"}], "nextForwardToken": "f1"}, stream1
    )
    stubbed.logs.add_response(
        "get_log_events",
        {"events": [{"message": "test_rmse=0.7"}], "nextForwardToken": "f2"},
        {**stream1, "nextToken": "f1"},
    )
    stubbed.logs.add_response(
        "get_log_events", {"events": [], "nextForwardToken": "f2"}, {**stream1, "nextToken": "f2"}
    )
    stream2 = {**stream1, "logStreamName": f"{NAME}/algo-2-1700000000"}
    stubbed.logs.add_response(
        "get_log_events", {"events": [{"message": "worker up"}], "nextForwardToken": "g1"}, stream2
    )
    stubbed.logs.add_response(
        "get_log_events", {"events": [], "nextForwardToken": "g1"}, {**stream2, "nextToken": "g1"}
    )
    describe(
        stubbed,
        description(
            "Completed",
            [
                ("Starting", "Launching instances"),
                ("Training", "Training in progress"),
                ("Completed", "done"),
            ],
        ),
    )
    # After completion: a line CloudWatch showed late, a throttled listing, then two empty reads.
    both = {
        "logStreams": [
            {"logStreamName": f"{NAME}/algo-1-1700000000"},
            {"logStreamName": f"{NAME}/algo-2-1700000000"},
        ]
    }
    listing = {"logGroupName": GROUP, "logStreamNamePrefix": f"{NAME}/"}
    stubbed.logs.add_response("describe_log_streams", both, listing)
    stubbed.logs.add_response(
        "get_log_events",
        {"events": [{"message": "model saved"}], "nextForwardToken": "f3"},
        {**stream1, "nextToken": "f2"},
    )
    stubbed.logs.add_response(
        "get_log_events", {"events": [], "nextForwardToken": "f3"}, {**stream1, "nextToken": "f3"}
    )
    stubbed.logs.add_response(
        "get_log_events", {"events": [], "nextForwardToken": "g1"}, {**stream2, "nextToken": "g1"}
    )
    stubbed.logs.add_client_error(
        "describe_log_streams", service_error_code="ThrottlingException", service_message="Rate"
    )
    for _ in range(2):
        stubbed.logs.add_response("describe_log_streams", both, listing)
        stubbed.logs.add_response(
            "get_log_events",
            {"events": [], "nextForwardToken": "f3"},
            {**stream1, "nextToken": "f3"},
        )
        stubbed.logs.add_response(
            "get_log_events",
            {"events": [], "nextForwardToken": "g1"},
            {**stream2, "nextToken": "g1"},
        )
    lines: list[str] = []
    handles: list[tuple[str, int]] = []

    result = run_job(
        stubbed.clients,
        TRAINING,
        REQUEST,
        log=lines.append,
        watch=Watch(clock=clock),
        on_handle=lambda arn: handles.append((arn, len(clock.sleeps))),
    )

    assert result["TrainingJobStatus"] == "Completed"
    assert handles == [(ARN, 0)], "the ARN is recorded before the first poll"
    transitions = [
        line
        for line in lines
        if line.startswith(f"[{NAME}] ") and "console.aws" in line and "created" not in line
    ]
    assert [t.split("] ")[1].split(":")[0] for t in transitions] == [
        "Starting",
        "Training",
        "Completed",
    ]
    assert "[algo-1-1700000000] epoch 1" in lines
    assert "[algo-1-1700000000] test_rmse=0.7" in lines
    assert "[algo-2-1700000000] worker up" in lines
    assert lines[-1] == "[algo-1-1700000000] model saved", "the late line is not lost"
    stubbed.verify()


def test_failed_job_reports_sagemakers_failure_reason(stubbed, clock):
    created(stubbed)
    describe(
        stubbed,
        description(
            "Failed",
            [("Starting", "Launching"), ("Failed", "AlgorithmError")],
            FailureReason="AlgorithmError: ValueError: invalid SMILES at row 3",
        ),
    )
    drained(stubbed)

    with pytest.raises(JobFailedError, match="invalid SMILES at row 3"):
        run_job(stubbed.clients, TRAINING, REQUEST, log=lambda _: None, watch=Watch(clock=clock))
    stubbed.verify()


def test_job_stopped_while_followed_fails_the_step_with_a_clear_message(stubbed, clock):
    created(stubbed)
    describe(
        stubbed, description("Stopped", [("Starting", "Launching"), ("Stopped", "Stopped by user")])
    )
    drained(stubbed)

    with pytest.raises(JobFailedError, match="stopped before finishing"):
        run_job(stubbed.clients, TRAINING, REQUEST, log=lambda _: None, watch=Watch(clock=clock))
    stubbed.verify()


@pytest.mark.parametrize("ended", ["Failed", "Stopping", "Stopped"])
def test_retry_after_a_failed_or_stopped_job_creates_the_next_attempt(stubbed, clock, ended):
    second = f"{NAME}-a2"
    second_arn = ARN.replace(NAME, second)
    spot_request = {
        **REQUEST,
        "CheckpointConfig": {"S3Uri": f"s3://flywheel-test/ckpt/{NAME}", "LocalPath": "/opt/ml/c"},
    }
    listed(stubbed, (NAME, ended))
    describe(stubbed, description(ended, [(ended, "ended")], FailureReason="OOM at epoch 3"))
    not_found(stubbed, second)
    stubbed.sagemaker.add_response(
        "create_training_job",
        {"TrainingJobArn": second_arn},
        # The checkpoints belong to the logical job: the next attempt resumes from them.
        {**spot_request, "TrainingJobName": second},
    )
    completed = {
        **description("Completed", [("Completed", "done")]),
        "TrainingJobName": second,
        "TrainingJobArn": second_arn,
    }
    stubbed.sagemaker.add_response("describe_training_job", completed, {"TrainingJobName": second})
    drained(stubbed)
    lines: list[str] = []

    result = run_job(
        stubbed.clients, TRAINING, spot_request, log=lines.append, watch=Watch(clock=clock)
    )

    assert result["TrainingJobName"] == second
    assert any(f"attempt 1 ended {ended}: OOM at epoch 3" in line for line in lines)
    stubbed.verify()


def test_throttled_describe_is_survived_and_polling_goes_on(stubbed, clock):
    created(stubbed)
    for _ in range(3):
        stubbed.sagemaker.add_client_error(
            "describe_training_job",
            service_error_code="ThrottlingException",
            service_message="Rate exceeded",
        )
    describe(stubbed, description("Completed", [("Completed", "done")]))
    drained(stubbed)
    lines: list[str] = []

    result = run_job(stubbed.clients, TRAINING, REQUEST, log=lines.append, watch=Watch(clock=clock))

    assert result["TrainingJobStatus"] == "Completed"
    assert sum("throttled" in line for line in lines) == 3
    assert len(clock.sleeps) == 3 + 1, (
        "three throttled Describes, one pause between empty log reads"
    )
    stubbed.verify()


def test_retry_reattaches_to_running_training_job(stubbed, clock):
    creates: list[dict] = []
    stubbed.clients.sagemaker.meta.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob",
        lambda params, **_: creates.append(params),
    )

    class PodPreempted(Exception):
        pass

    def preempt(sleeps: int) -> None:
        raise PodPreempted

    # First attempt: creates the job, sees it running, then its pod dies mid-poll.
    created(stubbed)
    describe(stubbed, description("InProgress", [("Training", "Training in progress")]))
    no_streams(stubbed)
    clock.on_sleep = preempt
    with pytest.raises(PodPreempted):
        run_job(stubbed.clients, TRAINING, REQUEST, log=lambda _: None, watch=Watch(clock=clock))

    # Second attempt: the same request finds the job by its name and follows it to the end.
    clock.on_sleep = None
    listed(stubbed, (NAME, "InProgress"))
    describe(stubbed, description("InProgress", [("Training", "Training in progress")]))
    no_streams(stubbed)
    describe(
        stubbed,
        description("Completed", [("Training", "Training in progress"), ("Completed", "done")]),
    )
    drained(stubbed)
    lines: list[str] = []
    handles: list[str] = []
    result = run_job(
        stubbed.clients,
        TRAINING,
        REQUEST,
        log=lines.append,
        watch=Watch(clock=clock),
        on_handle=handles.append,
    )

    assert result["TrainingJobStatus"] == "Completed"
    assert len(creates) == 1
    assert handles == [ARN]
    assert any("reattaching" in line for line in lines)
    stubbed.verify()


def test_sigterm_during_polling_stops_the_training_job(stubbed, clock):
    created(stubbed)
    describe(stubbed, description("InProgress", [("Training", "Training in progress")]))
    no_streams(stubbed)
    stubbed.sagemaker.add_response("stop_training_job", {}, {"TrainingJobName": NAME})
    describe(
        stubbed,
        description("Stopping", [("Training", "Training in progress"), ("Stopping", "Stopping")]),
    )
    # What the Kubeflow UI's "terminate" does to the task pod, sent while the launcher waits.
    clock.on_sleep = lambda sleeps: os.kill(os.getpid(), signal.SIGTERM) if sleeps == 1 else None
    before = signal.getsignal(signal.SIGTERM)
    lines: list[str] = []

    with pytest.raises(StepCancelledError, match="asked to stop"):
        run_job(stubbed.clients, TRAINING, REQUEST, log=lines.append, watch=Watch(clock=clock))

    assert any("Stopping" in line for line in lines)
    assert signal.getsignal(signal.SIGTERM) is before, "the previous handler is restored"
    stubbed.verify()


def completed_attempt(name: str) -> dict:
    return {
        **description("Completed", [("Completed", "done")]),
        "TrainingJobName": name,
        "TrainingJobArn": ARN.replace(NAME, name),
    }


def test_a_completed_attempt_is_reattached_after_the_attempts_before_it_were_deleted(
    stubbed, clock
):
    # Retention deleted the Failed attempt 1, so its name is free; attempt 2 had Completed.
    second = f"{NAME}-a2"
    listed(stubbed, (second, "Completed"))
    stubbed.sagemaker.add_response(
        "describe_training_job", completed_attempt(second), {"TrainingJobName": second}
    )
    drained(stubbed)
    lines: list[str] = []

    result = run_job(stubbed.clients, TRAINING, REQUEST, log=lines.append, watch=Watch(clock=clock))

    assert result["TrainingJobName"] == second, "no new job under the freed base name"
    assert any(f"[{second}] training job exists (Completed): reattaching" in x for x in lines)
    stubbed.verify()


def test_a_deleting_attempt_is_never_followed_nor_its_name_reused(stubbed, clock):
    second = f"{NAME}-a2"
    listed(stubbed, (NAME, "Deleting"))
    describe(stubbed, description("Deleting", [("Failed", "ended")]))
    not_found(stubbed, second)
    stubbed.sagemaker.add_response(
        "create_training_job",
        {"TrainingJobArn": ARN.replace(NAME, second)},
        {**REQUEST, "TrainingJobName": second},
    )
    stubbed.sagemaker.add_response(
        "describe_training_job", completed_attempt(second), {"TrainingJobName": second}
    )
    drained(stubbed)
    lines: list[str] = []

    result = run_job(stubbed.clients, TRAINING, REQUEST, log=lines.append, watch=Watch(clock=clock))

    assert result["TrainingJobName"] == second
    assert any("attempt 1 is Deleting (deleted, its name still taken)" in x for x in lines)
    stubbed.verify()


def test_a_job_deleted_while_followed_fails_the_step_in_one_line(stubbed, clock):
    created(stubbed)
    describe(stubbed, description("InProgress", [("Training", "Training in progress")]))
    no_streams(stubbed)
    not_found(stubbed)
    drained(stubbed)

    with pytest.raises(JobFailedError, match=r"it was deleted \(deleted\) while this step"):
        run_job(stubbed.clients, TRAINING, REQUEST, log=lambda _: None, watch=Watch(clock=clock))
    stubbed.verify()


def throttled(stubbed, operation: str, times: int) -> None:
    for _ in range(times):
        stubbed.sagemaker.add_client_error(
            operation, service_error_code="ThrottlingException", service_message="Rate exceeded"
        )


def test_throttling_from_the_first_call_is_ridden_out_with_jittered_capped_back_off(stubbed, clock):
    throttled(stubbed, "list_training_jobs", 40)
    listed(stubbed)
    throttled(stubbed, "describe_training_job", 5)
    not_found(stubbed)
    stubbed.sagemaker.add_response("create_training_job", {"TrainingJobArn": ARN}, REQUEST)
    describe(stubbed, description("Completed", [("Completed", "done")]))
    drained(stubbed)

    result = run_job(
        stubbed.clients, TRAINING, REQUEST, log=lambda _: None, watch=Watch(clock=clock)
    )

    assert result["TrainingJobStatus"] == "Completed"
    waits = clock.sleeps[:45]
    assert len(set(waits)) > 10, "jittered: throttled steps do not ask again in step"
    assert max(waits) <= Backoff().ceiling, "capped"
    assert waits[0] < waits[6], "backs off"
    stubbed.verify()


def test_throttled_until_the_steps_time_out_is_one_line_and_no_job(stubbed, clock):
    throttled(stubbed, "list_training_jobs", 30)

    with pytest.raises(ThrottledTooLongError) as raised:
        run_job(
            stubbed.clients,
            TRAINING,
            REQUEST,
            log=lambda _: None,
            watch=Watch(clock=clock, deadline_seconds=120),
        )

    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"ListTrainingJobs {NAME}: SageMaker throttled it")
    assert "until the step's time-out (120s)" in message
    assert clock.time == pytest.approx(120)


@pytest.mark.parametrize(
    ("secondary", "said"),
    [
        ("MaxWaitTimeExceeded", "managed spot training ran out of time (MaxWaitTimeExceeded)"),
        ("MaxRuntimeExceeded", "it ran past MaxRuntimeInSeconds=3600 (MaxRuntimeExceeded)"),
        ("Stopped", "stopped before finishing (from the console, the API or a cancelled run)"),
    ],
)
def test_a_stopped_job_is_reported_by_its_stop_reason(stubbed, clock, secondary, said):
    created(stubbed)
    describe(stubbed, description("Stopped", [(secondary, "ended")]))
    drained(stubbed)

    with pytest.raises(JobFailedError) as raised:
        run_job(stubbed.clients, TRAINING, REQUEST, log=lambda _: None, watch=Watch(clock=clock))

    assert said in str(raised.value)
    stubbed.verify()
