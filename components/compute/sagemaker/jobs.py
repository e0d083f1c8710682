"""The kinds of SageMaker job the runner drives, and what differs between them: API and field names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Stopped"})


@dataclass(frozen=True)
class JobType:
    """One job kind: ``Training`` gives CreateTrainingJob, DescribeTrainingJob, StopTrainingJob."""

    noun: str
    log_group: str
    console_path: str

    @property
    def _snake(self) -> str:
        return self.noun.lower()

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


TRAINING = JobType("Training", "/aws/sagemaker/TrainingJobs", "jobs")
TRANSFORM = JobType("Transform", "/aws/sagemaker/TransformJobs", "transform-jobs")
