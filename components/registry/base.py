"""The model-registry interface: versions with metrics, lineage and a stage.

Two implementations share it: the local registry (a folder) and SageMaker Model Registry. It is
kept small on purpose: register, look up, list, find the champion, promote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

Stage = Literal["candidate", "champion", "archived"]
STAGES: tuple[Stage, ...] = ("candidate", "champion", "archived")


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version. ``model_uri`` points at its ``model.tar.gz``."""

    name: str
    version: int
    model_uri: str
    model_sha256: str
    stage: Stage
    metrics: Mapping[str, float] = field(default_factory=dict)
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    lineage: Mapping[str, Any] = field(default_factory=dict)
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ModelVersion:
        return cls(**{key: raw[key] for key in cls.__dataclass_fields__ if key in raw})


@dataclass(frozen=True)
class Registration:
    """The result of ``register``: the version, and whether this call created it."""

    version: ModelVersion
    created: bool


class ModelRegistry(Protocol):
    """Where model versions live. Every write is atomic: it happens whole or not at all."""

    uri: str

    def register(
        self,
        name: str,
        model_artifact: str,
        *,
        metrics: Mapping[str, float],
        hyperparameters: Mapping[str, Any],
        lineage: Mapping[str, Any],
    ) -> Registration:
        """Add a candidate version; registering the same model bytes again returns the existing one."""
        ...

    def get(self, name: str, version: int) -> ModelVersion: ...

    def versions(self, name: str) -> list[ModelVersion]: ...

    def champion(self, name: str) -> ModelVersion | None: ...

    def promote(self, name: str, version: int, reason: str = "") -> ModelVersion:
        """Make ``version`` the champion; the previous champion is archived."""
        ...
