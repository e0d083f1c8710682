"""How politely, and how promptly, the launcher follows a 2-hour SageMaker training job.

Runs the real remote runner (``components.compute.sagemaker.remote_runner.run_job``) against an
in-memory SageMaker whose job moves through its secondary statuses on a simulated clock, so
two hours pass in milliseconds. Prints the number of DescribeTrainingJob calls, calls per
job-hour, and the worst delay between a status change and the launcher noticing it.

Targets (issue #3): at most 60 Describe calls per job-hour; under 60 s worst notice delay.

    .venv/bin/python benchmarks/sagemaker_polling.py
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from flywheel.components.compute.sagemaker import AwsClients, Watch, run_job
from flywheel.components.compute.sagemaker.jobs import TRAINING
from flywheel.components.compute.sagemaker.polling import PollSchedule

JOB = "bench-train-0123456789"
HOURS = 2.0
# (seconds after creation, TrainingJobStatus, SecondaryStatus): a typical long job.
TIMELINE = [
    (0.0, "InProgress", "Starting"),
    (173.0, "InProgress", "Downloading"),
    (251.0, "InProgress", "Training"),
    (HOURS * 3600 - 97.0, "InProgress", "Uploading"),
    (HOURS * 3600, "Completed", "Completed"),
]


@dataclass
class SimulatedClock:
    time: float = 0.0

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.time += seconds


@dataclass
class SimulatedSageMaker:
    """Answers Create/Describe for one job whose status follows ``TIMELINE`` on ``clock``."""

    clock: SimulatedClock
    describes: list[float] = field(default_factory=list)
    created: bool = False

    def create_training_job(self, **request: Any) -> dict[str, str]:
        self.created = True
        return {"TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{JOB}"}

    def describe_training_job(self, TrainingJobName: str) -> dict[str, Any]:
        if not self.created:
            raise ClientError(
                {
                    "Error": {
                        "Code": "ValidationException",
                        "Message": "Requested resource not found.",
                    }
                },
                "DescribeTrainingJob",
            )
        now = self.clock.now()
        self.describes.append(now)
        reached = [step for step in TIMELINE if step[0] <= now]
        start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
        return {
            "TrainingJobName": JOB,
            "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{JOB}",
            "TrainingJobStatus": reached[-1][1],
            "SecondaryStatus": reached[-1][2],
            "SecondaryStatusTransitions": [
                {"Status": s, "StartTime": start + datetime.timedelta(seconds=t)}
                for t, _, s in reached
            ],
        }


class QuietLogs:
    def describe_log_streams(self, **_: Any) -> dict[str, Any]:
        return {"logStreams": []}


def simulate(schedule: PollSchedule) -> tuple[int, float]:
    """Describe calls made, and the worst delay from a status change to the Describe that saw it."""
    clock = SimulatedClock()
    sagemaker = SimulatedSageMaker(clock)
    clients = AwsClients(sagemaker=sagemaker, s3=None, logs=QuietLogs(), region="us-east-1")
    run_job(
        clients,
        TRAINING,
        {"TrainingJobName": JOB},
        log=lambda _: None,
        watch=Watch(clock=clock, schedule=schedule),
    )
    delays = [
        min(seen for seen in sagemaker.describes if seen >= changed) - changed
        for changed, _, _ in TIMELINE
    ]
    return len(sagemaker.describes), max(delays)


def main() -> None:
    schedule = PollSchedule()
    calls, worst = simulate(schedule)
    print(f"simulated job:              {HOURS:.0f} h, {len(TIMELINE)} status changes")
    print(f"schedule:                   {schedule}")
    print(f"DescribeTrainingJob calls:  {calls} ({calls / HOURS:.1f} per job-hour; target <= 60)")
    print(f"worst notice delay:         {worst:.1f} s on this timeline (target < 60 s)")
    print(f"worst possible delay:       {schedule.ceiling:.1f} s (the schedule's ceiling)")


if __name__ == "__main__":
    main()
