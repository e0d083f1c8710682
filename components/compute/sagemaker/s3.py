"""S3 locations: parse and check ``s3://bucket/key``, stage local files, fetch job outputs.

Local inputs are uploaded under a key made from their content digest, so staging the same file
twice (a retried step) writes the same object and gives the same URI, which keeps job specs, and
so job names, stable across retries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.components.contract.packaging import sha256_of_file, sha256_of_tree
from flywheel.components.errors import InvalidSpecError

# S3's bucket rule: 3-63 lower-case letters, digits, dots and hyphens.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def parent(self) -> S3Uri:
        """The "folder" holding this key: a prefix that lists only its siblings."""
        return S3Uri(self.bucket, self.key.rpartition("/")[0])

    def child(self, *parts: str) -> S3Uri:
        key = "/".join(p.strip("/") for p in (self.key, *parts) if p.strip("/"))
        return S3Uri(self.bucket, key)


def is_s3(location: str) -> bool:
    return location.startswith("s3://")


def parse_s3_uri(field: str, uri: str, *, allow_bucket_only: bool = False) -> S3Uri:
    """``s3://bucket/key`` as parts, or an error naming ``field``."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise InvalidSpecError(field, f"{uri!r} is not an s3://bucket/key URI")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not _BUCKET.match(bucket):
        raise InvalidSpecError(field, f"{uri!r}: {bucket!r} is not a valid bucket name")
    key = key.strip("/")
    if not key and not allow_bucket_only:
        raise InvalidSpecError(field, f"{uri!r} has no key after the bucket")
    return S3Uri(bucket, key)


@dataclass(frozen=True)
class Upload:
    """One planned copy of a local file to S3."""

    source: Path
    target: S3Uri


@dataclass(frozen=True)
class StagedLocation:
    """Where a job will read an input (``uri``) and the uploads that put it there."""

    uri: S3Uri
    uploads: tuple[Upload, ...] = ()


class Stager:
    """Moves files between this machine and one S3 prefix (the config's ``s3_prefix``).

    Planning is pure (digests of local files), so a job's whole request, and its name, is known
    and checked before anything is uploaded.
    """

    def __init__(self, s3: Any, prefix: S3Uri) -> None:
        self._s3 = s3
        self.prefix = prefix

    def plan_file(self, path: Path, folder: str, name: str | None = None) -> StagedLocation:
        """``path`` at ``<prefix>/<folder>/<sha256>/<name>`` (``name`` defaults to the file's own)."""
        target = self.prefix.child(folder, sha256_of_file(path)[:16], name or path.name)
        return StagedLocation(target, (Upload(path, target),))

    def plan_location(self, field: str, location: str, folder: str) -> StagedLocation:
        """An S3 prefix holding ``location``: an S3 URI as it is, a local file or folder to upload."""
        if is_s3(location):
            return StagedLocation(parse_s3_uri(field, location))
        path = Path(location)
        if path.is_file():
            planned = self.plan_file(path, folder)
            return StagedLocation(planned.uri.parent, planned.uploads)
        if path.is_dir():
            base = self.prefix.child(folder, sha256_of_tree(path)[:16])
            files = sorted(p for p in path.rglob("*") if p.is_file())
            if not files:
                raise InvalidSpecError(field, f"{location} holds no files")
            uploads = tuple(Upload(f, base.child(str(f.relative_to(path)))) for f in files)
            return StagedLocation(base, uploads)
        raise InvalidSpecError(field, f"{location} does not exist")

    def upload(self, *locations: StagedLocation) -> None:
        """Carry out planned uploads, skipping objects already there (a retried step)."""
        for location in locations:
            for upload in location.uploads:
                if not self.exists(upload.target):
                    self._s3.upload_file(
                        str(upload.source), upload.target.bucket, upload.target.key
                    )

    def exists(self, uri: S3Uri) -> bool:
        listing = self._s3.list_objects_v2(Bucket=uri.bucket, Prefix=uri.key, MaxKeys=1)
        return any(item["Key"] == uri.key for item in listing.get("Contents", []))

    def download_prefix(self, uri: S3Uri, folder: Path) -> list[Path]:
        """Copy every object under ``uri`` into ``folder``, keeping relative keys."""
        written = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=uri.bucket, Prefix=uri.key.rstrip("/") + "/"):
            for item in page.get("Contents", []):
                relative = item["Key"][len(uri.key) :].lstrip("/")
                target = folder / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                self._s3.download_file(uri.bucket, item["Key"], str(target))
                written.append(target)
        return written

    def download_file(self, uri: S3Uri, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        self._s3.download_file(uri.bucket, uri.key, str(target))
        return target
