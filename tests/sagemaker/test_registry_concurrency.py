"""One model package per model bytes on SageMaker Model Registry, with registrations at once.

Each registration runs in a process of its own (``register_process.py``) against a moto server on
127.0.0.1, and all start on one signal. A slow CreateModelPackage (a hook in the test process only)
holds a caller between its look and its create, so a registry that only looks first registers the
bytes twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest
from moto.core.responses import EmptyResult
from moto.sagemaker.responses import SageMakerResponse

from flywheel.components.compute.sagemaker.claims import Claim, ClaimTiming, S3Claims, next_step
from flywheel.components.compute.sagemaker.clients import AwsClients
from flywheel.components.compute.sagemaker.registry import SageMakerModelRegistry
from flywheel.components.compute.sagemaker.s3 import S3Uri
from flywheel.components.contract.packaging import sha256_of_file

from .moto_sagemaker import moto_sagemaker, placeholder_model_archive
from .register_process import BUCKET, IMAGE

DRIVER = Path(__file__).with_name("register_process.py")


def _delete_model_package(self: SageMakerResponse) -> EmptyResult:
    """DeleteModelPackage, which moto lacks: the package leaves the group as SageMaker's does."""
    backend = self.sagemaker_backend
    arn = backend.model_package_name_mapping.get(self._get_param("ModelPackageName"))
    backend.model_packages.pop(arn, None)
    return EmptyResult()


@pytest.fixture
def endpoint_url(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(
        SageMakerResponse, "delete_model_package", _delete_model_package, raising=False
    )
    with moto_sagemaker(monkeypatch) as url:
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
        yield url


@pytest.fixture
def name() -> str:
    """A model package group of the test's own: moto keeps its state for the whole process."""
    return f"race-{uuid.uuid4().hex[:12]}"


def _model(tmp_path: Path, label: str) -> Path:
    path = tmp_path / f"{label}.tar.gz"
    path.write_bytes(placeholder_model_archive() + label.encode())
    return path


def _race(
    endpoint_url: str, tmp_path: Path, name: str, models: list[Path], *options: str
) -> list[dict[str, object]]:
    """Register ``models`` as ``name`` at once, a process each; their results, in order."""
    go = tmp_path / "go"
    runs = []
    for index, model in enumerate(models):
        ready, result = tmp_path / f"ready-{index}", tmp_path / f"result-{index}.json"
        log = (tmp_path / f"register-{index}.log").open("w")
        command = [sys.executable, str(DRIVER), endpoint_url, str(model), str(ready), str(go)]
        process = subprocess.Popen(
            [*command, str(result), "--name", name, *options], stdout=log, stderr=subprocess.STDOUT
        )
        runs.append((process, ready, result, log))
    deadline = time.monotonic() + 60
    while not all(ready.exists() for _, ready, _, _ in runs):
        assert time.monotonic() < deadline, "a registering process never got ready"
        assert all(process.poll() is None for process, *_ in runs), "a process died early"
        time.sleep(0.01)
    go.touch()
    results = []
    for index, (process, _, result, log) in enumerate(runs):
        assert process.wait(timeout=120) == 0, (tmp_path / f"register-{index}.log").read_text()
        log.close()
        results.append(json.loads(result.read_text()))
    return results


def _packages(endpoint_url: str, name: str) -> list[dict[str, object]]:
    sagemaker = boto3.client("sagemaker", endpoint_url=endpoint_url, region_name="us-east-1")
    return sagemaker.list_model_packages(ModelPackageGroupName=name)["ModelPackageSummaryList"]


def _registry(endpoint_url: str, **options: object) -> SageMakerModelRegistry:
    clients = AwsClients.connect("us-east-1", endpoint_url)
    return SageMakerModelRegistry(clients, S3Uri(BUCKET, "models"), image=IMAGE, **options)


def test_the_same_bytes_registered_at_once_give_one_package_and_one_version(
    endpoint_url, tmp_path, name
):
    model = _model(tmp_path, "same")

    results = _race(endpoint_url, tmp_path, name, [model, model], "--slow-create", "1.5")

    assert len(_packages(endpoint_url, name)) == 1
    assert results[0]["version"] == results[1]["version"]
    assert results[0]["arn"] == results[1]["arn"]
    assert sorted(r["created"] for r in results) == [False, True]


def test_different_bytes_registered_at_once_give_two_packages(endpoint_url, tmp_path, name):
    models = [_model(tmp_path, "first"), _model(tmp_path, "second")]

    results = _race(endpoint_url, tmp_path, name, models, "--slow-create", "1.0")

    assert len(_packages(endpoint_url, name)) == 2
    assert sorted(r["version"] for r in results) == [1, 2]
    assert all(r["created"] for r in results)


def test_a_claimant_overtaken_while_slow_deletes_its_later_duplicate(endpoint_url, tmp_path, name):
    model = _model(tmp_path, "slow")

    # The claim goes stale (1 s) long before the slow claimant creates (4 s), so the other caller
    # takes it over and creates too: the second look leaves one package.
    results = _race(
        endpoint_url,
        tmp_path,
        name,
        [model, model],
        *("--slow-create", "4", "--stale-after", "1", "--poll", "0.1"),
    )

    (package,) = _packages(endpoint_url, name)
    assert results[0]["arn"] == results[1]["arn"] == package["ModelPackageArn"]
    assert sorted(r["created"] for r in results) == [False, True]
    logs = [(tmp_path / f"register-{index}.log").read_text() for index in range(2)]
    assert sum("taking over the registration" in log for log in logs) == 1
    assert sum("duplicated version 1; deleted it" in log for log in logs) == 1


def test_a_claim_left_by_a_caller_that_died_is_taken_over_once_stale(endpoint_url, tmp_path, name):
    model = _model(tmp_path, "orphan")
    lines: list[str] = []
    registry = _registry(
        endpoint_url, timing=ClaimTiming(stale_after=1, poll=0.1), log=lines.append
    )
    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1")
    died = S3Claims(s3, S3Uri(BUCKET, "models/claims"), owner="died")
    held = died.claim(died.key(name, sha256_of_file(model)))
    assert held is not None and held.mine

    registration = registry.register(name, str(model), metrics={}, hyperparameters={}, lineage={})

    assert registration.created
    assert len(_packages(endpoint_url, name)) == 1
    assert any("taking over the registration" in line for line in lines)


def test_a_claim_whose_package_was_deleted_is_taken_over_at_once(endpoint_url, tmp_path, name):
    model = _model(tmp_path, "deleted")
    lines: list[str] = []
    first = _registry(endpoint_url).register(
        name, str(model), metrics={}, hyperparameters={}, lineage={}
    )
    sagemaker = boto3.client("sagemaker", endpoint_url=endpoint_url, region_name="us-east-1")
    sagemaker.delete_model_package(ModelPackageName=first.version.lineage["model_package_arn"])
    later = _registry(endpoint_url, timing=ClaimTiming(stale_after=600), log=lines.append)

    started = time.monotonic()
    again = later.register(name, str(model), metrics={}, hyperparameters={}, lineage={})

    assert again.created
    assert time.monotonic() - started < 30
    assert len(_packages(endpoint_url, name)) == 1
    assert [line for line in lines if "is gone" in line or "waiting" in line] == [
        f"model {name}: version 1, registered for {first.version.model_sha256[:12]}, "
        "is gone; registering it again"
    ]


def test_of_two_claims_on_the_same_bytes_only_the_first_holds(endpoint_url):
    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1")
    first, second = (S3Claims(s3, S3Uri(BUCKET, "claims"), owner=o) for o in ("one", "two"))
    key = first.key("qsar", "ab" * 32)

    held, seen = first.claim(key), second.claim(key)

    assert held is not None and held.mine
    assert seen is not None and not seen.mine and seen.owner == "one"
    assert next_step(seen, stale_after=60) == "wait"
    assert first.settle(held, 3)
    settled = second.read(key)
    assert settled is not None and settled.version == 3
    assert next_step(settled, stale_after=60) == "use_version"


def test_of_two_waiters_taking_over_one_stale_claim_only_one_holds_it(endpoint_url):
    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1")
    died, one, two = (S3Claims(s3, S3Uri(BUCKET, "claims"), owner=o) for o in ("x", "1", "2"))
    key = died.key("qsar", "cd" * 32)
    stale = died.claim(key)
    assert stale is not None

    taken = [waiter.take_over(stale) for waiter in (one, two)]

    assert [claim.mine for claim in taken] == [True, False]
    assert taken[1].owner == "1"
    assert not died.settle(stale, 1)


@pytest.mark.parametrize(
    ("version", "age", "expected"),
    [
        (None, 0.0, "wait"),
        (None, 119.0, "wait"),
        (None, 120.0, "take_over"),
        (4, 0.0, "use_version"),
        (4, 999.0, "use_version"),
    ],
)
def test_a_waiter_waits_for_a_fresh_claim_uses_a_settled_one_and_takes_over_a_stale_one(
    version, age, expected
):
    claim = Claim("k", '"etag"', "other", mine=False, version=version, age=age)
    assert next_step(claim, stale_after=120.0) == expected
