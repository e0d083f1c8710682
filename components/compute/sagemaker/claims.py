"""Claims on a model's bytes, made with S3 conditional writes, so one caller registers them.

SageMaker has no conditional create for model packages: two callers that both look, find no
package for some bytes and create one make two. So before it creates, a caller claims the bytes
by writing ``<root>/<model>/<sha256>.json`` with ``If-None-Match: *``; S3 lets exactly one such
write succeed and refuses the others with 412. The claimant creates the package, then settles the
claim, writing the package's version into it (``If-Match`` on its own write). The others read the
claim until it names a version, and return that version.

A claimant can die between its claim and its package. A claim with no version that is older than
``stale_after`` is taken over, again conditionally (``If-Match`` on the ETag that was read), so of
several waiters only one takes it. Its age is S3's own, to the second (the response's ``Date``
less the object's ``Last-Modified``), so no two machines' clocks are compared. A claim naming a
version whose package is gone (deleted since) is taken over at once. Claims are never deleted, so
they need only ``s3:GetObject`` and ``s3:PutObject`` under the registry's prefix.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from flywheel.components.compute.sagemaker.errors import error_code
from flywheel.components.compute.sagemaker.s3 import S3Uri

# 412: the condition did not hold. 409: another conditional write to the key was in flight.
_LOST = frozenset({"PreconditionFailed", "412"})
_CONFLICT = frozenset({"ConditionalRequestConflict", "409"})
_GONE = frozenset({"NoSuchKey", "404"})

Next = Literal["wait", "use_version", "take_over"]


@dataclass(frozen=True)
class ClaimTiming:
    """How long a claim with no package holds others off, and how often they look again."""

    # A claim covers one CreateModelPackage and a List (uploads happen before it), so two minutes
    # is long for a live claimant and short enough for a retry after a crash.
    stale_after: float = 120.0
    poll: float = 1.0


@dataclass(frozen=True)
class Claim:
    """A claim as read (or written): its ETag, who made it, and the version once settled."""

    key: str
    etag: str
    owner: str
    mine: bool
    version: int | None = None
    age: float = 0.0  # seconds since it was written, by S3's clock, when it was read


def next_step(claim: Claim, stale_after: float) -> Next:
    """What a caller that does not hold ``claim`` does next.

    A settled claim names the package to return. An unsettled one is waited for, until it is
    stale: its claimant died, or is so slow that a duplicate package is the lesser harm (the
    registry's second look removes it).
    """
    if claim.version is not None:
        return "use_version"
    return "take_over" if claim.age >= stale_after else "wait"


def _age(response: dict[str, Any]) -> float:
    modified = response.get("LastModified")
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if modified is None:
        return 0.0
    now = parsedate_to_datetime(date) if date else datetime.now(UTC)
    return max(0.0, (now - modified).total_seconds())


class S3Claims:
    """Claims under ``root``; ``owner`` tells this caller's claims from the others'."""

    def __init__(self, s3: Any, root: S3Uri, owner: str | None = None) -> None:
        self._s3 = s3
        self._root = root
        self.owner = owner or uuid.uuid4().hex

    def key(self, model: str, digest: str) -> str:
        return self._root.child(model, f"{digest}.json").key

    def _body(self, version: int | None) -> bytes:
        record = {
            "owner": self.owner,
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "version": version,
        }
        return json.dumps(record, sort_keys=True).encode()

    def _put(self, key: str, version: int | None, condition: dict[str, str]) -> Claim | None:
        """Our claim, written under ``condition``; None when another caller's write came first."""
        try:
            response = self._s3.put_object(
                Bucket=self._root.bucket,
                Key=key,
                Body=self._body(version),
                ContentType="application/json",
                **condition,
            )
        except ClientError as error:
            if error_code(error) in _LOST | _CONFLICT | _GONE:
                return None
            raise
        return Claim(key, response["ETag"], self.owner, mine=True, version=version)

    def claim(self, key: str) -> Claim | None:
        """Claim ``key`` if no one has: our claim, else the one there (None if it vanished)."""
        return self._put(key, None, {"IfNoneMatch": "*"}) or self.read(key)

    def take_over(self, stale: Claim) -> Claim | None:
        """Replace ``stale`` with our claim; the claim there now, ours or another waiter's."""
        return self._put(stale.key, None, {"IfMatch": stale.etag}) or self.read(stale.key)

    def settle(self, held: Claim, version: int) -> bool:
        """Record ``version`` in our claim; False if another caller took it over meanwhile."""
        return self._put(held.key, version, {"IfMatch": held.etag}) is not None

    def read(self, key: str) -> Claim | None:
        """The claim at ``key``, or None. A damaged one reads as unsettled, so it goes stale."""
        try:
            response = self._s3.get_object(Bucket=self._root.bucket, Key=key)
        except ClientError as error:
            if error_code(error) in _GONE:
                return None
            raise
        try:
            record = json.loads(response["Body"].read())
        except ValueError:
            record = {}
        record = record if isinstance(record, dict) else {}
        version = record.get("version")
        owner = str(record.get("owner", ""))
        return Claim(
            key,
            response["ETag"],
            owner,
            mine=owner == self.owner,
            version=version if isinstance(version, int) else None,
            age=_age(response),
        )
