"""SageMaker Model Registry behind the ``ModelRegistry`` interface.

A model name is a model package group; a version is a model package in it. Stages map to the
approval status SageMaker deployments act on: ``candidate`` is PendingManualApproval, ``champion``
is the latest Approved package ("find latest approved"), ``archived`` is Rejected (a promotion
rejects the previous champion, so at most one package is Approved). Metrics, hyperparameters and
lineage are kept whole in a JSON document in S3 that the package's CustomerMetadataProperties
point to (SageMaker caps those at 50 short entries from a small character set); the metrics are
also a ModelQuality statistics report.

Open it with ``open_registry("sagemaker://<region>/<bucket>/<prefix>?image=<serving image>")``:
the bucket and prefix are where local model archives and metric reports are uploaded.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from botocore.exceptions import ClientError

from flywheel.components.compute.sagemaker.clients import AwsClients
from flywheel.components.compute.sagemaker.errors import error_code, is_not_found
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
from flywheel.components.registry.base import ModelVersion, Registration, Stage
from flywheel.components.registry.local import validate_model_name

SCHEME = "sagemaker://"
_STAGES: dict[str, Stage] = {
    "PendingManualApproval": "candidate",
    "Approved": "champion",
    "Rejected": "archived",
}
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
    room = service_model("sagemaker").shape_for("CustomerMetadataMap").metadata["max"]
    for name, value in sorted(metrics.items()):
        key, text = f"{_METRIC}{name}", repr(float(value))
        if len(properties) < room and fits("sagemaker", "CustomerMetadataMap", {key: text}):
            properties[key] = text
    return properties


class SageMakerModelRegistry:
    """Model versions in SageMaker Model Registry; ``uri`` is the ``sagemaker://`` URI it was opened with."""

    def __init__(
        self, clients: AwsClients, staging: S3Uri, *, image: str | None = None, uri: str = ""
    ) -> None:
        self._clients = clients
        self._stager = Stager(clients.s3, staging)
        self._image = image
        self.uri = uri

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
        clients = AwsClients.connect(region, query.get("endpoint_url"))
        return cls(clients, staging, image=query.get("image"), uri=uri)

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
        properties = package.get("CustomerMetadataProperties", {})
        metadata = self._metadata(properties)
        number = int(package["ModelPackageVersion"])
        stage = _STAGES.get(package.get("ModelApprovalStatus", ""), "candidate")
        if stage == "champion" and number != champion:
            stage = "archived"
        containers = package.get("InferenceSpecification", {}).get("Containers", [])
        return ModelVersion(
            name=name,
            version=number,
            model_uri=containers[0].get("ModelDataUrl", "") if containers else "",
            model_sha256=properties.get(_SHA, ""),
            stage=stage,
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
        )

    def _champion_number(self, summaries: list[dict[str, Any]]) -> int | None:
        approved = [
            s["ModelPackageVersion"]
            for s in summaries
            if s.get("ModelApprovalStatus") == "Approved"
        ]
        return max(approved, default=None)

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
            self._clients.sagemaker.create_model_package_group(
                ModelPackageGroupName=name,
                ModelPackageGroupDescription=f"{name}: registered by Flywheel",
            )

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
        """A PendingManualApproval package; the same model bytes registered again return the first."""
        validate_model_name(name)
        if self._image is None:
            raise InvalidSpecError(
                "registry", "a SageMaker registry URI needs ?image=<serving image URI>"
            )
        digest = self._digest(model_artifact)
        for existing in self.versions(name):
            if existing.model_sha256 == digest:
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
        arn = self._clients.sagemaker.create_model_package(
            ModelPackageGroupName=name,
            ModelPackageDescription=f"{name} model {digest[:12]}",
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [
                    {"Image": self._image, "ModelDataUrl": str(staged.uri), **environment}
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            ModelMetrics={
                "ModelQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": str(statistics.uri)}
                }
            },
            CustomerMetadataProperties=_properties(metrics, digest, metadata.uri),
        )["ModelPackageArn"]
        package = self._clients.sagemaker.describe_model_package(ModelPackageName=arn)
        return Registration(self.get(name, int(package["ModelPackageVersion"])), created=True)

    def promote(self, name: str, version: int, reason: str = "") -> ModelVersion:
        """Approve ``version``; reject the previous champion so "latest approved" is unambiguous."""
        summaries = self._packages(name)
        target = next((s for s in summaries if s["ModelPackageVersion"] == version), None)
        if target is None:
            raise RegistryError(f"model {name} has no version {version}")
        previous = self._champion_number(summaries)
        if previous == version:
            return self.get(name, version)
        package = self._clients.sagemaker.describe_model_package(
            ModelPackageName=target["ModelPackageArn"]
        )
        self._clients.sagemaker.update_model_package(
            ModelPackageArn=target["ModelPackageArn"],
            ModelApprovalStatus="Approved",
            ApprovalDescription=(reason or "promoted by Flywheel")[:1024],
            # Sent back unchanged: SageMaker merges them, but some implementations (moto)
            # replace them with what the update carries, which would drop the metrics.
            CustomerMetadataProperties=package.get("CustomerMetadataProperties", {}),
        )
        for summary in summaries:
            if summary.get("ModelApprovalStatus") == "Approved":
                self._clients.sagemaker.update_model_package(
                    ModelPackageArn=summary["ModelPackageArn"],
                    ModelApprovalStatus="Rejected",
                    ApprovalDescription=f"replaced by version {version}",
                )
        return self.get(name, version)
