"""The kinds of SageMaker job the runner drives, and what differs between them: API and field names.

Each kind also names its requests the same way (a digest of the request, checked as the service
checks it), so that rule lives here once for every kind.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flywheel.components.compute.sagemaker import naming
from flywheel.components.compute.sagemaker.validation import check_request

TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Stopped"})
# A job being deleted (or whose deletion failed) is gone for the step: never followed, yet its
# name stays taken until the service frees it.
GONE_STATUSES = frozenset({"Deleting", "DeleteFailed"})


@dataclass(frozen=True)
class JobType:
    """One job kind: ``Training`` gives CreateTrainingJob, DescribeTrainingJob, StopTrainingJob."""

    noun: str
    log_group: str
    console_path: str
    # What follows the job's name in its log streams' names: ``/`` for the job's own instances,
    # ``-`` for a tuning job, whose trials are training jobs named ``<tuning job>-001-<hash>``.
    log_separator: str = "/"

    def log_stream_prefix(self, name: str) -> str:
        return f"{name}{self.log_separator}"

    @property
    def _snake(self) -> str:
        """``HyperParameterTuning`` -> ``hyper_parameter_tuning``, as boto3 names the methods."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.noun).lower()

    @property
    def name_key(self) -> str:
        return f"{self.noun}JobName"

    @property
    def status_key(self) -> str:
        return f"{self.noun}JobStatus"

    @property
    def arn_key(self) -> str:
        return f"{self.noun}JobArn"

    def create(self, client: Any, request: Mapping[str, Any]) -> str:
        """Create the job; its ARN."""
        return getattr(client, f"create_{self._snake}_job")(**request)[self.arn_key]

    def describe(self, client: Any, name: str) -> dict[str, Any]:
        return getattr(client, f"describe_{self._snake}_job")(**{self.name_key: name})

    def stop(self, client: Any, name: str) -> None:
        getattr(client, f"stop_{self._snake}_job")(**{self.name_key: name})

    def list_page(self, client: Any, name_contains: str, token: str | None) -> dict[str, Any]:
        """One page of ``List<Noun>Jobs`` for names containing ``name_contains``."""
        params: dict[str, Any] = {"NameContains": name_contains, "MaxResults": 100}
        if token:
            params["NextToken"] = token
        return getattr(client, f"list_{self._snake}_jobs")(**params)

    @property
    def summaries_key(self) -> str:
        return f"{self.noun}JobSummaries"

    def named(
        self,
        run_id: str,
        task: str,
        request: Mapping[str, Any],
        *,
        complete: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """``request`` under its deterministic name, refused (naming the field) as Create would.

        The name is a digest of the run, the task and everything in ``request``, so a retry of the
        same task finds its job, and a changed request gets a job of its own. ``complete`` fills
        in what follows from the name (a prefix named after the job) before the check.
        """
        name = naming.validate_name("job_name", naming.resource_name(run_id, task, request))
        named = {self.name_key: name, **request}
        if complete is not None:
            complete(name, named)
        return dict(check_request("sagemaker", f"Create{self.noun}Job", named))

    @staticmethod
    def failure_reason(description: Mapping[str, Any]) -> str:
        """Why a job failed, for people: ``FailureReason``, and the container's ``ExitMessage``.

        Processing jobs say little in ``FailureReason`` ("AlgorithmError: See job logs"); what the
        script said as it exited (up to 1 KB) is in ``ExitMessage``. Other kinds have none.
        """
        reason = description.get("FailureReason") or "no FailureReason given"
        exit_message = (description.get("ExitMessage") or "").strip()
        return f"{reason} (the container said: {exit_message})" if exit_message else reason

    @staticmethod
    def stop_reason(description: Mapping[str, Any]) -> str:
        """Why a job ended Stopped, for people: SageMaker says it in the secondary status.

        A managed spot job that waited past ``MaxWaitTimeInSeconds`` (for spot capacity and
        training together) and a job that ran past ``MaxRuntimeInSeconds`` both end Stopped;
        only a plain ``Stopped`` was asked for by someone.
        """
        stopping = description.get("StoppingCondition", {})
        secondary = description.get("SecondaryStatus")
        if secondary == "MaxWaitTimeExceeded":
            checkpoints = description.get("CheckpointConfig", {}).get("S3Uri")
            resume = (
                f"a retry resumes from the checkpoints in {checkpoints}"
                if checkpoints
                else "a retry starts over"
            )
            return (
                "managed spot training ran out of time (MaxWaitTimeExceeded): SageMaker stopped "
                f"it after MaxWaitTimeInSeconds={stopping.get('MaxWaitTimeInSeconds')} of waiting "
                f"for spot capacity and training; {resume}; compute_config.max_wait_seconds "
                "sets how long it may wait"
            )
        if secondary == "MaxRuntimeExceeded":
            return (
                "it ran past MaxRuntimeInSeconds="
                f"{stopping.get('MaxRuntimeInSeconds')} (MaxRuntimeExceeded); "
                "compute_config.max_run_seconds sets the limit"
            )
        return "it was stopped before finishing (from the console, the API or a cancelled run)"


TRAINING = JobType("Training", "/aws/sagemaker/TrainingJobs", "jobs")
TRANSFORM = JobType("Transform", "/aws/sagemaker/TransformJobs", "transform-jobs")
# DescribeProcessingJob has no SecondaryStatusTransitions: the runner logs each status change.
PROCESSING = JobType("Processing", "/aws/sagemaker/ProcessingJobs", "processing-jobs")
# A tuning job writes no logs of its own: its trials are training jobs, logging to the training
# jobs' group under their own names (``<tuning job>-001-<hash>/algo-1-...``).
TUNING = JobType(
    "HyperParameterTuning", "/aws/sagemaker/TrainingJobs", "hyper-tuning-jobs", log_separator="-"
)
