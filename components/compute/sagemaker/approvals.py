"""Approval decisions on SageMaker model packages, and their audit trail.

A decision is one ``UpdateModelPackage``: ``ModelApprovalStatus``, an ``ApprovalDescription``
("Approved by alice: <note>", at most 1024 characters) and two CustomerMetadataProperties,
``approval.by`` and ``approval.at``, so the console shows who decided and when. That call is the
commit point.

SageMaker keeps only the latest decision, so the whole trail is a JSON list in S3
(``<prefix>/approvals/<model>/<version>.json``), written just before the update, conditionally
(If-Match on the ETag read), so two people deciding on one version at once cannot lose each
other's entry: the second is refused and can run again. An entry written by a caller that died
before its update is not in force: the trail read back is the document's entries up to the
package's ``approval.at``, and a decision the document lacks (its write lost, or made in the
console, or before Flywheel kept a trail) is read from the package itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from botocore.exceptions import ClientError

from flywheel.components.compute.sagemaker.errors import error_code
from flywheel.components.compute.sagemaker.s3 import S3Uri
from flywheel.components.errors import RegistryError
from flywheel.components.registry.base import APPROVAL_STATUSES, ApprovalStatus

APPROVED_BY = "approval.by"
APPROVED_AT = "approval.at"
# Properties kept free for the two above (SageMaker allows 50 in all).
RESERVED_PROPERTIES = 2
DESCRIPTION_LIMIT = 1024
_PROPERTY_PUNCTUATION = set(" _.:/=+-@")
_METRIC = "metric."
_LOST = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
_GONE = frozenset({"NoSuchKey", "404"})


def property_value(text: str) -> str:
    """``text`` in the characters SageMaker allows in a property value (others become ``_``)."""
    kept = "".join(c if c.isalnum() or c in _PROPERTY_PUNCTUATION else "_" for c in text)
    return kept[:256] or "unknown"


def description(entry: Mapping[str, str]) -> str:
    """The ApprovalDescription for a decision: who, and why."""
    text = f"{entry['status']} by {entry['by']}" + (f": {entry['note']}" if entry["note"] else "")
    return text[:DESCRIPTION_LIMIT]


def properties_with(
    properties: Mapping[str, str], entry: Mapping[str, str], room: int
) -> dict[str, str]:
    """The package's properties with who and when of ``entry``, within SageMaker's ``room``.

    Packages registered before approvals may have every slot taken by metrics; those copies are
    dropped (the metrics stay whole in the metadata document) until the two fit.
    """
    merged = {
        **properties,
        APPROVED_BY: property_value(entry["by"]),
        APPROVED_AT: entry["at"],
    }
    metrics = sorted((k for k in merged if k.startswith(_METRIC)), reverse=True)
    while len(merged) > room and metrics:
        merged.pop(metrics.pop(0))
    return merged


def _outside_decision(package: Mapping[str, Any]) -> dict[str, str]:
    """The package's current decision, read from the package alone."""
    modified_by = package.get("LastModifiedBy", {})
    by = modified_by.get("IamIdentity", {}).get("Arn") or modified_by.get("UserProfileName", "")
    return {
        "status": package.get("ModelApprovalStatus", "PendingManualApproval"),
        "by": by or "outside Flywheel",
        "at": str(package.get("LastModifiedTime", "")),
        "note": package.get("ApprovalDescription", ""),
    }


def trail_in_force(
    package: Mapping[str, Any], document: list[dict[str, str]]
) -> list[dict[str, str]]:
    """The audit trail of ``package``: ``document``'s entries up to the package's decision,
    and that decision read from the package when the document does not end with it."""
    properties = package.get("CustomerMetadataProperties", {})
    status = package.get("ModelApprovalStatus", "PendingManualApproval")
    at = properties.get(APPROVED_AT)
    if at is None:  # never decided by Flywheel
        decided = status != "PendingManualApproval" or package.get("ApprovalDescription")
        return [_outside_decision(package)] if decided else []
    trail = [entry for entry in document if entry.get("at", "") <= at]
    if not trail or trail[-1]["at"] != at:  # the document's write was lost
        trail.append(
            {
                "status": status,
                "by": properties.get(APPROVED_BY, "unknown"),
                "at": at,
                "note": package.get("ApprovalDescription", ""),
            }
        )
    elif trail[-1]["status"] != status:  # changed since, outside Flywheel (the console)
        trail.append(_outside_decision(package))
    return trail


class ApprovalTrails:
    """The audit-trail documents in S3, one per model package."""

    def __init__(self, s3: Any, root: S3Uri) -> None:
        self._s3 = s3
        self._root = root

    def _uri(self, name: str, version: int) -> S3Uri:
        return self._root.child(name, f"{version}.json")

    def read(self, name: str, version: int) -> tuple[list[dict[str, str]], str | None]:
        """The document's entries and its ETag; no entries and None when there is none yet."""
        uri = self._uri(name, version)
        try:
            response = self._s3.get_object(Bucket=uri.bucket, Key=uri.key)
        except ClientError as error:
            if error_code(error) in _GONE:
                return [], None
            raise
        entries = json.loads(response["Body"].read())
        return (entries if isinstance(entries, list) else []), response["ETag"]

    def write(
        self, name: str, version: int, entries: list[dict[str, str]], etag: str | None
    ) -> None:
        """Replace the document, only if it is still the one read (``etag``)."""
        uri = self._uri(name, version)
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self._s3.put_object(
                Bucket=uri.bucket,
                Key=uri.key,
                Body=json.dumps(entries, indent=2).encode(),
                ContentType="application/json",
                **condition,
            )
        except ClientError as error:
            if error_code(error) in _LOST:
                raise RegistryError(
                    f"model {name} version {version}: another approval was recorded at the same "
                    "moment; nothing was changed, run it again"
                ) from None
            raise


def decided(status: str) -> ApprovalStatus:
    """A package's approval status as the registry reads it (packages always carry one)."""
    return cast(ApprovalStatus, status) if status in APPROVAL_STATUSES else "PendingManualApproval"
