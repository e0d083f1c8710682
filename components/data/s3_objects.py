"""S3 objects as inputs: what one is (size, ETag, version) and why it cannot be read.

A HEAD request answers both without downloading a byte: the metadata fingerprints the object for
the pipeline cache, and the error code tells a missing bucket from a missing key from a denied
read, which pyarrow's own error ("path does not exist") does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from flywheel.components.compute.sagemaker.s3 import S3Uri, parse_s3_uri
from flywheel.components.errors import InvalidSpecError

_MISSING = ("404", "NoSuchKey", "NoSuchBucket", "NotFound")
_DENIED = ("403", "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch")


@dataclass(frozen=True)
class ObjectStat:
    uri: str
    size: int
    etag: str
    version_id: str

    @property
    def fingerprint(self) -> str:
        """Changes whenever the object's bytes do: a new ETag, size or version."""
        version = f" version={self.version_id}" if self.version_id else ""
        return f"{self.uri} etag={self.etag} size={self.size}{version}"


def s3_client() -> Any:
    """An S3 client from the default chain; botocore itself honours ``AWS_ENDPOINT_URL``."""
    return boto3.client("s3")


def stat_object(uri: str, field: str, client: Any = None) -> ObjectStat:
    """The object's metadata, or one line saying why it cannot be read."""
    location = parse_s3_uri(field, uri)
    client = client or s3_client()
    try:
        head = client.head_object(Bucket=location.bucket, Key=location.key)
    except ClientError as error:
        raise _explain(uri, field, client, location, error) from None
    except NoCredentialsError:
        raise InvalidSpecError(
            field, f"{uri}: no AWS credentials (environment, profile or IRSA) to read it"
        ) from None
    except BotoCoreError as error:
        raise InvalidSpecError(field, f"{uri}: S3 cannot be reached: {error}") from None
    return ObjectStat(
        uri=uri,
        size=int(head["ContentLength"]),
        etag=str(head.get("ETag", "")).strip('"'),
        version_id=str(head.get("VersionId") or ""),
    )


def _explain(
    uri: str, field: str, client: Any, location: S3Uri, error: ClientError
) -> InvalidSpecError:
    code = str(error.response.get("Error", {}).get("Code", ""))
    if code in _DENIED:
        return InvalidSpecError(field, f"{uri}: access denied (the role needs s3:GetObject on it)")
    if code in _MISSING:
        if not _bucket_exists(client, location.bucket):
            return InvalidSpecError(field, f"{uri}: no such bucket {location.bucket!r}")
        return InvalidSpecError(field, f"{uri}: no such key {location.key!r}")
    return InvalidSpecError(field, f"{uri}: S3 refused to read it ({code})")


def _bucket_exists(client: Any, bucket: str) -> bool:
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as error:
        return str(error.response.get("Error", {}).get("Code", "")) not in _MISSING
    return True
