"""SageMaker Model Registry behind the ``ModelRegistry`` interface.

A model name is a model package group; a version is a model package in it. Its approval status
is the package's ``ModelApprovalStatus``, and the champion is the newest Approved package: the one
SageMaker's "latest approved" deployments pick, as the SageMaker Projects MLOps template's deploy
pipeline does. Stages follow: ``champion`` is that package, ``candidate`` one still
PendingManualApproval, ``archived`` any other (Rejected, or Approved and older). A promotion
approves the package and leaves the champion it replaces Approved; promoting an older package (a
rollback) rejects the Approved packages newer than it, saying why in their ApprovalDescription, so
"latest approved" is the rolled-back one. Who decided, when and why is on the package and in an
audit trail in S3 (``approvals.py``). Metrics, hyperparameters and
lineage are kept whole in a JSON document in S3 that the package's CustomerMetadataProperties
point to (SageMaker caps those at 50 short entries from a small character set); the metrics are
also a ModelQuality statistics report.

Open it with ``open_registry("sagemaker://<region>/<bucket>/<prefix>?image=<serving image>")``:
the bucket and prefix are where local model archives and metric reports are uploaded.

One package per model bytes, even when two callers register the same bytes at once. SageMaker
has no conditional create for packages, so ``register`` uses both a conditional write and a
second look:

- **A claim** (``claims.py``): before creating, the caller writes ``<prefix>/claims/<model>/
  <sha256>.json`` to S3 with ``If-None-Match: *``. One caller wins; the others wait for the
  version it writes into the claim and return that package. A claim left by a caller that died
  goes stale after ``ClaimTiming.stale_after`` and is taken over.
- **A second look**, after every create: if a lower-numbered package carries the same digest (a
  stale claim was taken over from a claimant that was slow, not dead), this caller deletes its own
  package (``sagemaker:DeleteModelPackage``) and returns the lower one. Every caller applies the
  same rule, so the earliest package wins and only the later ones are deleted.

The claim alone would fail open when a live claimant is overtaken; the second look alone would
let two packages exist for a moment, where a reader could see both. Together, duplicates need a
claimant slower than ``stale_after``, and even then they do not last.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from botocore.exceptions import ClientError

from flywheel.components.compute.sagemaker.approvals import (
    APPROVED_AT,
    RESERVED_PROPERTIES,
    ApprovalTrails,
    decided,
    description,
    properties_with,
    trail_in_force,
)
from flywheel.components.compute.sagemaker.claims import Claim, ClaimTiming, S3Claims, next_step
from flywheel.components.compute.sagemaker.clients import AwsClients
from flywheel.components.compute.sagemaker.errors import (
    error_code,
    is_already_exists,
    is_not_found,
)
from flywheel.components.compute.sagemaker.s3 import (
    S3Uri,
    StagedLocation,
    Stager,
    is_s3,
    parse_s3_uri,
)
from flywheel.components.compute.sagemaker.serving import (
    MODEL_CODE_DIRECTORY,
    serving_environment,
    with_serving_code,
)
from flywheel.components.compute.sagemaker.validation import fits, service_model
from flywheel.components.contract.packaging import (
    MODEL_ARCHIVE,
    code_with_dependencies,
    sha256_of_file,
)
from flywheel.components.contract.workload import load_workload
from flywheel.components.errors import InvalidSpecError, RegistryError
from flywheel.components.registry.base import (
    ApprovalStatus,
    ModelVersion,
    Registration,
    Stage,
    approval_record,
    approval_status,
    check_approvable,
)
from flywheel.components.registry.local import validate_model_name

SCHEME = "sagemaker://"
_METRIC = "metric."
_SHA = "model_sha256"
_METADATA = "flywheel_metadata"


def _properties(metrics: Mapping[str, float], digest: str, metadata: S3Uri) -> dict[str, str]:
    """CustomerMetadataProperties: the digest, where the metadata document is, and metrics that fit.

    SageMaker allows 50 entries of at most 256 characters from a small character set, which
    hyperparameters and lineage do not meet; they live whole in the metadata document. Metrics are
    copied here only so the console shows them, and only those SageMaker would accept.
    """
    properties = {_SHA: digest, _METADATA: str(metadata)}
    room = _property_room() - RESERVED_PROPERTIES
    for name, value in sorted(metrics.items()):
        key, text = f"{_METRIC}{name}", repr(float(value))
        if len(properties) < room and fits("sagemaker", "CustomerMetadataMap", {key: text}):
            properties[key] = text
    return properties


def _property_room() -> int:
    return service_model("sagemaker").shape_for("CustomerMetadataMap").metadata["max"]


def _stage(status: ApprovalStatus, number: int, champion: int | None) -> Stage:
    if number == champion:
        return "champion"
    return "candidate" if status == "PendingManualApproval" else "archived"


class SageMakerModelRegistry:
    """Model versions in SageMaker Model Registry; ``uri`` is the ``sagemaker://`` URI it was opened with."""

    def __init__(
        self,
        clients: AwsClients,
        staging: S3Uri,
        *,
        image: str | None = None,
        uri: str = "",
        timing: ClaimTiming | None = None,
        endpoint_url: str | None = None,
        log: Callable[[str], None] = print,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clients = clients
        self._stager = Stager(clients.s3, staging)
        self._claims = S3Claims(clients.s3, staging.child("claims"))
        self._trails = ApprovalTrails(clients.s3, staging.child("approvals"))
        self._timing = timing or ClaimTiming()
        self._log = log
        self._sleep = sleep
        self._image = image
        self.uri = uri
        self._endpoint_url = endpoint_url

    @classmethod
    def from_uri(cls, uri: str) -> SageMakerModelRegistry:
        """``sagemaker://<region>/<bucket>/<prefix>[?image=<uri>&endpoint_url=<url>]``."""
        parts = urlsplit(uri)
        region = parts.netloc
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = sorted(set(query) - {"image", "endpoint_url"})
        if unknown:
            raise InvalidSpecError("registry", f"unknown option {unknown[0]!r} in {uri}")
        if not region:
            raise InvalidSpecError(
                "registry", f"{uri}: name a region, sagemaker://<region>/<bucket>/<prefix>"
            )
        staging = parse_s3_uri("registry", f"s3:/{parts.path}")
        endpoint_url = query.get("endpoint_url")
        clients = AwsClients.connect(region, endpoint_url)
        return cls(clients, staging, image=query.get("image"), uri=uri, endpoint_url=endpoint_url)

    def caller(self) -> str:
        """Who is deciding, as AWS knows them: the caller identity's ARN (no grant needed)."""
        from flywheel.components.compute.aws import aws_client

        sts = aws_client("sts", self._clients.region, self._endpoint_url or "")
        return str(sts.get_caller_identity()["Arn"])

    # -- reads ---------------------------------------------------------------------------------

    def _packages(self, name: str) -> list[dict[str, Any]]:
        summaries: list[dict[str, Any]] = []
        request: dict[str, Any] = {"ModelPackageGroupName": validate_model_name(name)}
        try:
            while True:
                page = self._clients.sagemaker.list_model_packages(**request)
                summaries.extend(page.get("ModelPackageSummaryList", []))
                if not page.get("NextToken"):
                    break
                request["NextToken"] = page["NextToken"]
        except ClientError as error:
            if is_not_found(error):
                return []
            raise
        return sorted(summaries, key=lambda s: s["ModelPackageVersion"])

    def _metadata(self, properties: Mapping[str, str]) -> dict[str, Any]:
        """The package's metadata document; empty when there is none to read.

        A package registered outside Flywheel has none, and a document deleted or damaged in S3
        must not make the whole model unreadable: the version is still listed, with the metrics
        its properties carry.
        """
        location = properties.get(_METADATA)
        if not location:
            return {}
        uri = parse_s3_uri(_METADATA, location)
        try:
            body = self._clients.s3.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read()
            document = json.loads(body)
        except ClientError as error:
            if error_code(error) not in {"NoSuchKey", "404"}:
                raise
            return {}
        except json.JSONDecodeError:
            return {}
        return document if isinstance(document, dict) else {}

    def _version(self, name: str, package_arn: str, champion: int | None) -> ModelVersion:
        package = self._clients.sagemaker.describe_model_package(ModelPackageName=package_arn)
        return self._as_version(name, package, champion)

    def _as_version(
        self, name: str, package: Mapping[str, Any], champion: int | None
    ) -> ModelVersion:
        properties = package.get("CustomerMetadataProperties", {})
        metadata = self._metadata(properties)
        number = int(package["ModelPackageVersion"])
        status = decided(package.get("ModelApprovalStatus", ""))
        containers = package.get("InferenceSpecification", {}).get("Containers", [])
        return ModelVersion(
            name=name,
            version=number,
            model_uri=containers[0].get("ModelDataUrl", "") if containers else "",
            model_sha256=properties.get(_SHA, ""),
            stage=_stage(status, number, champion),
            metrics=metadata.get("metrics")
            or {
                key.removeprefix(_METRIC): float(value)
                for key, value in properties.items()
                if key.startswith(_METRIC)
            },
            hyperparameters=metadata.get("hyperparameters", {}),
            lineage={
                **metadata.get("lineage", {}),
                "model_package_arn": package["ModelPackageArn"],
                "document": properties.get(_METADATA, ""),
            },
            created_at=str(package.get("CreationTime", "")),
            approval=status,
            approvals=self._trail(name, package),
        )

    def _trail(self, name: str, package: Mapping[str, Any]) -> list[dict[str, str]]:
        version = int(package["ModelPackageVersion"])
        decided_here = package.get("CustomerMetadataProperties", {}).get(APPROVED_AT)
        document = self._trails.read(name, version)[0] if decided_here else []
        return trail_in_force(package, document)

    def _champion_number(self, summaries: list[dict[str, Any]]) -> int | None:
        approved = [
            s["ModelPackageVersion"]
            for s in summaries
            if s.get("ModelApprovalStatus") == "Approved"
        ]
        return max(approved, default=None)

    def _find(
        self, name: str, digest: str, skip: frozenset[str] = frozenset()
    ) -> tuple[ModelVersion | None, frozenset[str]]:
        """The lowest-numbered package of ``name`` with ``digest``, and every package looked at.

        Packages in ``skip`` were looked at before and are not described again: a second look
        costs one List and a Describe per package created since the first.
        """
        summaries = self._packages(name)
        champion = self._champion_number(summaries)
        seen = set(skip)
        for summary in summaries:
            arn = summary["ModelPackageArn"]
            if arn in seen:
                continue
            seen.add(arn)
            package = self._clients.sagemaker.describe_model_package(ModelPackageName=arn)
            if package.get("CustomerMetadataProperties", {}).get(_SHA) == digest:
                return self._as_version(name, package, champion), frozenset(seen)
        return None, frozenset(seen)

    def versions(self, name: str) -> list[ModelVersion]:
        summaries = self._packages(name)
        champion = self._champion_number(summaries)
        return [self._version(name, s["ModelPackageArn"], champion) for s in summaries]

    def get(self, name: str, version: int) -> ModelVersion:
        summaries = self._packages(name)
        for summary in summaries:
            if summary["ModelPackageVersion"] == version:
                return self._version(
                    name, summary["ModelPackageArn"], self._champion_number(summaries)
                )
        known = [s["ModelPackageVersion"] for s in summaries]
        raise RegistryError(f"model {name} has no version {version}; versions: {known or 'none'}")

    def fetch_model(self, version: ModelVersion, target: Path) -> Path:
        """Copy ``version``'s ``model.tar.gz`` from S3 to ``target``."""
        return self._stager.download_file(parse_s3_uri("model_uri", version.model_uri), target)

    def champion(self, name: str) -> ModelVersion | None:
        """The latest Approved model package of the group, or None."""
        summaries = self._packages(name)
        number = self._champion_number(summaries)
        return None if number is None else self.get(name, number)

    # -- writes --------------------------------------------------------------------------------

    def _digest(self, model_artifact: str) -> str:
        if not is_s3(model_artifact):
            path = Path(model_artifact)
            if not path.is_file():
                raise InvalidSpecError("model_artifact", f"{model_artifact} is not a file")
            return sha256_of_file(path)
        uri = parse_s3_uri("model_artifact", model_artifact)
        body = self._clients.s3.get_object(Bucket=uri.bucket, Key=uri.key)["Body"]
        digest = hashlib.sha256()
        for block in iter(lambda: body.read(1 << 20), b""):
            digest.update(block)
        return digest.hexdigest()

    def _ensure_group(self, name: str) -> None:
        try:
            self._clients.sagemaker.describe_model_package_group(ModelPackageGroupName=name)
        except ClientError as error:
            if not is_not_found(error):
                raise
            try:
                self._clients.sagemaker.create_model_package_group(
                    ModelPackageGroupName=name,
                    ModelPackageGroupDescription=f"{name}: registered by Flywheel",
                )
            except ClientError as error:
                # Another caller registering at the same moment made it first.
                if not is_already_exists(error):
                    raise

    def _servable(
        self, model_artifact: str, lineage: Mapping[str, Any], scratch: Path
    ) -> tuple[StagedLocation, dict[str, Any]]:
        """The archive to register, and its container's environment.

        With the run's code in the lineage, the package carries it, as the SageMaker SDK
        repacks a model: ``code/`` in ``model.tar.gz`` and the environment naming the entry point,
        so an endpoint made from the package finds ``model_fn`` with no other file. A model
        registered without code is registered as it is.
        """
        code = lineage.get("code") or {}
        if not code.get("workload") or not code.get("entry_point"):
            if is_s3(model_artifact):
                return self._stager.plan_location("model_artifact", model_artifact, "models"), {}
            return self._stager.plan_file(Path(model_artifact), "models", MODEL_ARCHIVE), {}
        local = Path(model_artifact)
        if is_s3(model_artifact):
            uri = parse_s3_uri("model_artifact", model_artifact)
            local = self._stager.download_file(uri, scratch / "fetched" / MODEL_ARCHIVE)
        # The workload's serving code (``serving.entry_point``/``source_dir``, else the training
        # script's) with its dependencies beside it, as batch transform serves it.
        workload = load_workload(code["workload"])
        folder = code_with_dependencies(
            workload.serving_source_dir, workload.serving_dependencies, scratch
        )
        archive = with_serving_code(local, folder, scratch)
        environment = serving_environment(
            workload.serving_entry_point, MODEL_CODE_DIRECTORY, self._clients.region
        )
        return self._stager.plan_file(archive, "models", MODEL_ARCHIVE), {
            "Environment": environment
        }

    def register(
        self,
        name: str,
        model_artifact: str,
        *,
        metrics: Mapping[str, float],
        hyperparameters: Mapping[str, Any],
        lineage: Mapping[str, Any],
    ) -> Registration:
        """A PendingManualApproval package; the same model bytes registered again return the first.

        That holds for callers registering the same bytes at once, too (see the module's
        docstring): the uploads come first, as they are keyed by content and harmless to repeat,
        so the claim covers only the create and the second look.
        """
        validate_model_name(name)
        if self._image is None:
            raise InvalidSpecError(
                "registry", "a SageMaker registry URI needs ?image=<serving image URI>"
            )
        digest = self._digest(model_artifact)
        existing, seen = self._find(name, digest)
        if existing is not None:
            return Registration(existing, created=False)
        self._ensure_group(name)
        with tempfile.TemporaryDirectory(prefix="flywheel-registry-") as scratch:
            staged, environment = self._servable(model_artifact, lineage, Path(scratch))
            report = Path(scratch) / "statistics.json"
            report.write_text(json.dumps({"regression_metrics": dict(metrics)}, sort_keys=True))
            record = Path(scratch) / "metadata.json"
            document = {
                "metrics": dict(metrics),
                "hyperparameters": dict(hyperparameters),
                "lineage": dict(lineage),
                "model_sha256": digest,
            }
            record.write_text(json.dumps(document, sort_keys=True, default=str))
            statistics = self._stager.plan_file(report, "model-quality")
            metadata = self._stager.plan_file(record, "metadata")
            self._stager.upload(staged, statistics, metadata)
        request = {
            "ModelPackageGroupName": name,
            "ModelPackageDescription": f"{name} model {digest[:12]}",
            "ModelApprovalStatus": "PendingManualApproval",
            "InferenceSpecification": {
                "Containers": [
                    {"Image": self._image, "ModelDataUrl": str(staged.uri), **environment}
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            "ModelMetrics": {
                "ModelQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": str(statistics.uri)}
                }
            },
            "CustomerMetadataProperties": _properties(metrics, digest, metadata.uri),
        }
        return self._register_once(name, digest, request, seen)

    def _register_once(
        self, name: str, digest: str, request: dict[str, Any], seen: frozenset[str]
    ) -> Registration:
        """Create the package under a claim, or return the one another caller's claim made."""
        key = self._claims.key(name, digest)
        claim = self._claims.claim(key)
        waiting = False
        while True:
            if claim is None:  # removed (by hand, a lifecycle rule) or a write in flight: again
                self._sleep(self._timing.poll)
                claim = self._claims.claim(key)
                continue
            if claim.mine:
                return self._create_as_claimant(name, digest, request, claim, seen)
            step = next_step(claim, self._timing.stale_after)
            if step == "use_version":
                settled = self._settled(name, digest, claim)
                if settled is not None:
                    return Registration(settled, created=False)
                self._log(
                    f"model {name}: version {claim.version}, registered for {digest[:12]}, "
                    "is gone; registering it again"
                )
                claim = self._claims.take_over(claim)
            elif step == "take_over":
                self._log(
                    f"model {name}: taking over the registration of {digest[:12]}: its caller "
                    f"claimed it {claim.age:.0f}s ago and left no package"
                )
                claim = self._claims.take_over(claim)
            else:
                if not waiting:
                    waiting = True
                    self._log(
                        f"model {name}: another caller is registering {digest[:12]}; "
                        "waiting for its package"
                    )
                self._sleep(self._timing.poll)
                claim = self._claims.read(key)

    def _settled(self, name: str, digest: str, claim: Claim) -> ModelVersion | None:
        """The version a settled claim names, if its package is still there with these bytes."""
        if claim.version is None:
            return None
        try:
            version = self.get(name, claim.version)
        except RegistryError:
            return None
        return version if version.model_sha256 == digest else None

    def _create_as_claimant(
        self,
        name: str,
        digest: str,
        request: dict[str, Any],
        claim: Claim,
        seen: frozenset[str],
    ) -> Registration:
        # A claim taken over may come from a caller that died after its create: look first.
        existing, seen = self._find(name, digest, seen)
        if existing is not None:
            self._claims.settle(claim, existing.version)
            return Registration(existing, created=False)
        arn = self._clients.sagemaker.create_model_package(**request)["ModelPackageArn"]
        # The second look: a caller overtaken while slow may have created one too; the lower
        # version wins, and each caller deletes only its own package.
        winner, _ = self._find(name, digest, seen)
        if winner is None:  # the list has not caught up with the create yet
            package = self._clients.sagemaker.describe_model_package(ModelPackageName=arn)
            winner = self._as_version(name, package, None)
        mine = winner.lineage["model_package_arn"] == arn
        if not mine:
            self._delete_duplicate(name, arn, winner)
        self._claims.settle(claim, winner.version)
        return Registration(winner, created=mine)

    def _delete_duplicate(self, name: str, arn: str, kept: ModelVersion) -> None:
        try:
            self._clients.sagemaker.delete_model_package(ModelPackageName=arn)
        except ClientError as error:
            if is_not_found(error):
                return
            self._log(
                f"model {name}: could not delete {arn}, a duplicate of version {kept.version} "
                f"({error_code(error)}); grant sagemaker:DeleteModelPackage, or delete it by hand"
            )
            return
        self._log(f"model {name}: {arn} duplicated version {kept.version}; deleted it")

    def _described(self, name: str, version: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The group's package summaries, and ``version``'s package described."""
        summaries = self._packages(name)
        target = next((s for s in summaries if s["ModelPackageVersion"] == version), None)
        if target is None:
            known = [s["ModelPackageVersion"] for s in summaries]
            raise RegistryError(
                f"model {name} has no version {version}; versions: {known or 'none'}"
            )
        package = self._clients.sagemaker.describe_model_package(
            ModelPackageName=target["ModelPackageArn"]
        )
        return summaries, package

    def _decide(
        self, name: str, package: Mapping[str, Any], status: ApprovalStatus, by: str, note: str
    ) -> None:
        """One decision: the trail document first (conditionally), then the package (the commit)."""
        version = int(package["ModelPackageVersion"])
        document, etag = self._trails.read(name, version)
        entry = approval_record(status, by, note)
        self._trails.write(name, version, [*trail_in_force(package, document), entry], etag)
        self._clients.sagemaker.update_model_package(
            ModelPackageArn=package["ModelPackageArn"],
            ModelApprovalStatus=status,
            ApprovalDescription=description(entry),
            # Sent whole: SageMaker merges them, but some implementations (moto) replace them
            # with what the update carries, which would drop the metrics.
            CustomerMetadataProperties=properties_with(
                package.get("CustomerMetadataProperties", {}), entry, _property_room()
            ),
        )
        self._log(f"model {name}: version {version} {status} by {by}")

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
        """Record a decision on ``version`` (``UpdateModelPackage``); the champion, the newest
        Approved package, follows from it."""
        wanted = approval_status(status)
        summaries, package = self._described(name, version)
        current = self._as_version(name, package, self._champion_number(summaries))
        check_approvable(current, wanted, force=force)
        self._decide(name, package, wanted, by, note)
        return self.get(name, version)

    def promote(
        self,
        name: str,
        version: int,
        reason: str = "",
        *,
        by: str = "flywheel",
        force: bool = False,
    ) -> ModelVersion:
        """Approve ``version``, and reject the Approved packages newer than it (a rollback), so it
        is the newest Approved one: the champion.

        The newer ones are rejected oldest first, so until the last update the champion is the
        one being replaced, never a package in between.
        """
        summaries, package = self._described(name, version)
        champion = self._champion_number(summaries)
        current = self._as_version(name, package, champion)
        check_approvable(current, "Approved", force=force)
        if champion == version:
            return current
        self._decide(name, package, "Approved", by, reason)
        note = f"rolled back to version {version}" + (f": {reason}" if reason else "")
        for summary in summaries:
            newer = summary["ModelPackageVersion"] > version
            if newer and summary.get("ModelApprovalStatus") == "Approved":
                described = self._clients.sagemaker.describe_model_package(
                    ModelPackageName=summary["ModelPackageArn"]
                )
                self._decide(name, described, "Rejected", by, note)
        return self.get(name, version)
