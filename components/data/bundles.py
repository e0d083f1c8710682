"""Code bundles: a workload's folder and its ``workload.yaml`` as one content-addressed archive in S3.

A user's own script then runs on a cluster with no image rebuild, as SageMaker's SDK does with
``sourcedir.tar.gz``. The archive is byte-reproducible (``packaging.pack_folder``), so its SHA-256
is its name, ``bundle-<sha256>.tar.gz``: the same files give the same key, and every task that
fetches a bundle can check it got exactly what was named. A pod fetches each bundle once.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from flywheel.components.contract.packaging import pack_folder, sha256_of_file, unpack_archive
from flywheel.components.errors import InvalidSpecError

BUNDLE_KEY = re.compile(r"(?:^|/)bundle-([0-9a-f]{64})\.tar\.gz$")
WORKLOAD_FILE = "workload.yaml"
# Where a pod keeps fetched bundles; an emptyDir on /tmp under a read-only root filesystem.
CACHE_VARIABLE = "FLYWHEEL_BUNDLE_CACHE"


def pack_bundle(workload_path: str | Path, folder: Path) -> Path:
    """Write ``folder/bundle-<sha256>.tar.gz``: the workload's source folder and its workload.yaml.

    The workload.yaml goes in at the top with ``source_dir: .``, wherever the original pointed,
    so the unpacked bundle is a workload folder on its own.
    """
    from flywheel.components.contract.workload import load_workload

    workload = load_workload(workload_path)
    stage = folder / "stage"
    shutil.copytree(
        workload.source_dir, stage, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    raw = yaml.safe_load(workload.path.read_text())
    raw["source_dir"] = "."
    (stage / WORKLOAD_FILE).write_text(yaml.safe_dump(raw, sort_keys=False))
    archive = pack_folder(stage, folder / "bundle.tar.gz")
    shutil.rmtree(stage)
    return archive.rename(folder / f"bundle-{sha256_of_file(archive)}.tar.gz")


def upload_bundle(workload_path: str | Path, destination: str, client: Any = None) -> str:
    """Pack the workload and put it under ``destination`` (``s3://bucket/prefix``); its URI.

    An object already under that name holds the same bytes (the name is their digest), so it is
    left as it is.
    """
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import ClientError

    from flywheel.components.compute.sagemaker.s3 import parse_s3_uri
    from flywheel.components.data.s3_objects import s3_client

    prefix = parse_s3_uri("--to", destination, allow_bucket_only=True)
    client = client or s3_client()
    with tempfile.TemporaryDirectory(prefix="flywheel-bundle-") as scratch:
        archive = pack_bundle(workload_path, Path(scratch))
        target = prefix.child(archive.name)
        try:
            if not _exists(client, target.bucket, target.key):
                client.upload_file(str(archive), target.bucket, target.key)
        except (ClientError, S3UploadFailedError) as error:
            raise InvalidSpecError("--to", f"{target}: S3 refused the upload: {error}") from None
    return str(target)


def _exists(client: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def is_bundle(reference: str) -> bool:
    """Whether a workload reference names a bundle in S3 rather than a file or a built-in."""
    return reference.startswith("s3://")


def fetch_bundle(uri: str, client: Any = None) -> Path:
    """The ``workload.yaml`` of the bundle at ``uri``, fetched and verified once per pod."""
    from flywheel.components.compute.sagemaker.s3 import parse_s3_uri
    from flywheel.components.data.s3_objects import s3_client, stat_object

    location = parse_s3_uri("workload", uri)
    named = BUNDLE_KEY.search(location.key)
    if not named:
        raise InvalidSpecError(
            "workload", f"{uri} is not a code bundle (s3://.../bundle-<sha256>.tar.gz)"
        )
    digest = named.group(1)
    cache = Path(os.environ.get(CACHE_VARIABLE) or Path(tempfile.gettempdir()) / "flywheel-bundles")
    folder = cache / digest
    if (folder / WORKLOAD_FILE).is_file():
        return folder / WORKLOAD_FILE
    client = client or s3_client()
    stat_object(uri, "workload", client)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=f"{digest}.partial-") as scratch:
        archive = Path(scratch) / "bundle.tar.gz"
        client.download_file(location.bucket, location.key, str(archive))
        actual = sha256_of_file(archive)
        if actual != digest:
            raise InvalidSpecError(
                "workload",
                f"{uri}: its bytes have SHA-256 {actual}, not the {digest} it is named by",
            )
        unpacked = unpack_archive(archive, Path(scratch) / "bundle")
        if not (unpacked / WORKLOAD_FILE).is_file():
            raise InvalidSpecError("workload", f"{uri} holds no {WORKLOAD_FILE} at its top")
        try:
            unpacked.rename(folder)
        except OSError:
            # Another task of this pod got there first; its copy has the same bytes.
            if not (folder / WORKLOAD_FILE).is_file():
                raise
    return folder / WORKLOAD_FILE
