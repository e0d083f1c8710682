"""The model-registry interface: versions with metrics, lineage, a stage and an approval status.

Two implementations share it: the local registry (a folder) and SageMaker Model Registry. It is
kept small on purpose: register, look up, list, find the champion, promote, approve or reject.

Approval uses SageMaker's states in both registries. A version is registered
``PendingManualApproval``; a person (``flywheel approve``/``reject``) or the quality gate (with
``approval: auto``) makes it ``Approved`` or ``Rejected``, and every decision is kept in the
version's audit trail (``approvals``: status, by, at, note; oldest first). The champion is always
the newest ``Approved`` version, SageMaker's "latest approved" deploy rule: approving a version newer
than the champion makes it the champion, rejecting the champion hands the title back to the newest
version still Approved, and promoting an older version (a rollback) rejects the Approved versions
newer than it, so it is the newest Approved one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, cast

from flywheel.components.errors import InvalidSpecError, RegistryError

Stage = Literal["candidate", "champion", "archived"]
STAGES: tuple[Stage, ...] = ("candidate", "champion", "archived")
ApprovalStatus = Literal["PendingManualApproval", "Approved", "Rejected"]
APPROVAL_STATUSES: tuple[ApprovalStatus, ...] = ("PendingManualApproval", "Approved", "Rejected")


def approval_status(status: str) -> ApprovalStatus:
    """``status`` if it is one of SageMaker's approval states; refused in one line otherwise."""
    if status not in APPROVAL_STATUSES:
        raise InvalidSpecError(
            "status", f"{status!r} is not an approval status; use {', '.join(APPROVAL_STATUSES)}"
        )
    return cast(ApprovalStatus, status)


def approval_record(status: ApprovalStatus, by: str, note: str = "") -> dict[str, str]:
    """One audit-trail entry; ``at`` to the microsecond, so two decisions never share it."""
    return {
        "status": status,
        "by": by,
        "at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "note": note,
    }


def check_approvable(version: ModelVersion, status: ApprovalStatus, *, force: bool) -> None:
    """Approving a Rejected version takes ``force``: someone decided against it, on record."""
    if status == "Approved" and version.approval == "Rejected" and not force:
        last = version.approvals[-1] if version.approvals else {}
        why = f" by {last.get('by') or 'someone'}" + (
            f" ({last['note']})" if last.get("note") else ""
        )
        raise RegistryError(
            f"model {version.name} version {version.version} was Rejected{why}; "
            "approve it with force (flywheel approve --force) to override"
        )


def _legacy_approval(raw: Mapping[str, Any]) -> ApprovalStatus:
    """A version written before approvals existed: champions and archived versions passed the
    gate, so they were approved; a candidate was never decided on."""
    return "PendingManualApproval" if raw.get("stage", "candidate") == "candidate" else "Approved"


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
    approval: ApprovalStatus = "PendingManualApproval"
    # The audit trail, oldest first: {"status", "by", "at", "note"} for every decision.
    approvals: Sequence[Mapping[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ModelVersion:
        fields = {key: raw[key] for key in cls.__dataclass_fields__ if key in raw}
        fields.setdefault("approval", _legacy_approval(raw))
        fields["approvals"] = [dict(entry) for entry in fields.get("approvals", [])]
        return cls(**fields)


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

    def promote(
        self,
        name: str,
        version: int,
        reason: str = "",
        *,
        by: str = "flywheel",
        force: bool = False,
    ) -> ModelVersion:
        """Approve ``version`` and make it the champion; the previous champion is archived.

        Approved versions newer than it are Rejected (a rollback), so it is the newest Approved
        one. A Rejected version is refused unless ``force``.
        """
        ...

    def set_approval(
        self,
        name: str,
        version: int,
        status: str,
        *,
        by: str,
        note: str = "",
        force: bool = False,
    ) -> ModelVersion:
        """Record a decision on ``version`` in one atomic write; the champion follows the rule
        above. Refused in one line: an unknown version or status, or approving a Rejected version
        without ``force``."""
        ...
