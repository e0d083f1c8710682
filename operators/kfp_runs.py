"""Launching and finding KFP runs by their deterministic run key, through ``kfp.Client``.

The run key is in the run's display name (see :func:`operators.decision.run_name`). Creation
always looks the name up first, so a retry after a crash adopts the run it already created
instead of creating a second one: "already exists" means "already done".

Which version runs is pinned, never KFP's newest by creation time: ``pipeline.version`` or
``pipeline.pipelineVersionRef`` when the policy names one, else the version git holds now (the
pinned versions file the chart and the overlays mount, ``$FLYWHEEL_PIPELINE_VERSIONS``), else the
pipeline's only version. Argo CD creates a sync's versions in name order and a revert brings back
an old version, so creation time says nothing about which code is meant.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import kfp
from kfp.client import ServiceAccountTokenVolumeCredentials
from kfp_server_api.exceptions import ApiException

from flywheel.operators.decision import DELETED_STATE
from flywheel.operators.policy import PipelineRef

log = logging.getLogger(__name__)
# Projected service-account token with the KFP audience; mounted by the Helm chart.
TOKEN_PATH = Path("/var/run/secrets/kubeflow/pipelines/token")
# Every page of a listing the operator walks; KFP caps page_size at 200.
PAGE_SIZE = 100
# (connect, read) seconds for every KFP call: kfp.Client sends none, and a hung call would
# hold its worker thread, and so the policy, for good.
KFP_TIMEOUT = (5.0, 30.0)
# Connections kept open to KFP: one per worker thread of the operator's KFP pool.
KFP_CONNECTIONS = 16


class PipelineNotFound(LookupError):
    """The pipeline (or version) named in the spec does not exist in KFP."""


@dataclass(frozen=True)
class ResolvedPipeline:
    pipeline_id: str
    version_id: str
    experiment_id: str


@dataclass(frozen=True)
class RunState:
    state: str  # KFP v2beta1 RuntimeState: PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED, ...
    finished_time: str | None


def connect(
    host: str | None = None,
    namespace: str | None = None,
    timeout: tuple[float, float] = KFP_TIMEOUT,
) -> kfp.Client:
    """A ``kfp.Client`` for the operator: the projected token in a cluster, none on a laptop."""
    host = host or os.environ.get("KF_PIPELINES_ENDPOINT", "http://ml-pipeline.kubeflow:8888")
    credentials = (
        ServiceAccountTokenVolumeCredentials(str(TOKEN_PATH)) if TOKEN_PATH.exists() else None
    )
    with warnings.catch_warnings():
        # kfp warns on every construction that it needs KFP 2.0.0b2 or newer; we know.
        warnings.simplefilter("ignore", FutureWarning)
        # A namespace other than the default stops the client probing healthz when it is made.
        client = kfp.Client(host=host, credentials=credentials, namespace=namespace or "kubeflow")
    _bound_calls(client, timeout)
    return client


def _bound_calls(client: kfp.Client, timeout: tuple[float, float]) -> None:
    """Give every request of the client a timeout (its API methods cannot pass one through),
    and a connection per worker thread.

    All of the client's service APIs share one generated ``ApiClient`` and so one REST client.
    """
    rest = client._run_api.api_client.rest_client
    request = rest.request
    # The generated client keeps ten; more threads would open and drop connections per call.
    rest.pool_manager.connection_pool_kw["maxsize"] = KFP_CONNECTIONS

    def bounded(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return request(*args, _request_timeout=_request_timeout or timeout, **kwargs)

    rest.request = bounded


def equals_filter(key: str, value: str) -> str:
    """A v2beta1 list filter: ``key`` equals ``value``."""
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "stringValue": value}]})


def pinned_versions_file() -> Path | None:
    """The pinned versions file the deployment mounts, if it names one."""
    path = os.environ.get("FLYWHEEL_PIPELINE_VERSIONS")
    return Path(path) if path else None


def pipelines_namespace() -> str | None:
    """The profile namespace that holds the pipelines in multi-user KFP; None in standalone KFP,
    where pipelines are looked up without a namespace (KFP answers from its own)."""
    return os.environ.get("KFP_PIPELINES_NAMESPACE") or None


def pins_signature(path: Path | None) -> tuple[int, int, int] | None:
    """What changes when the pinned versions file does (kubelet swaps a ConfigMap's files)."""
    try:
        stat = path.stat() if path is not None else None
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size) if stat is not None else None


def read_pinned_versions(path: Path | None) -> dict[str, str]:
    """Pipeline name to its pinned version name; empty when there is no file (yet)."""
    if path is None or not path.is_file():
        return {}
    pins = json.loads(path.read_text())
    return {str(name): str(version) for name, version in pins.items()}


class RunLauncher:
    """KFP operations the operator needs, keyed by run names; one instance per KFP endpoint."""

    def __init__(
        self,
        client: kfp.Client,
        namespace: str | None = None,
        pins: Path | None = None,
        pipelines_in: str | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        # Multi-user KFP lists a profile's own pipelines only when asked for that namespace.
        self.pipelines_in = pipelines_in if pipelines_in is not None else pipelines_namespace()
        # Read on every lookup: a GitOps sync updates the mounted file without a restart.
        self.pins = pins if pins is not None else pinned_versions_file()
        self._experiments: dict[str, str] = {}
        # Policies resolve concurrently; without it, each would create its own "Default".
        self._experiments_lock = threading.Lock()

    def resolve(self, ref: PipelineRef) -> ResolvedPipeline:
        """Pipeline and pinned version ids, and the experiment (created if missing)."""
        if ref.pipeline_version_ref:
            pipeline_id, version_id = self._find_version(ref.pipeline_version_ref)
        else:
            name = ref.name or ""
            pipeline_id = self._pipeline_id(name)
            if pipeline_id is None:
                raise PipelineNotFound(f"no KFP pipeline named {name!r}")
            version = ref.version or read_pinned_versions(self.pins).get(name)
            version_id = self._version_id(pipeline_id, name, version)
        return ResolvedPipeline(pipeline_id, version_id, self._experiment_id(ref.experiment))

    def _pipeline_id(self, name: str) -> str | None:
        if self.pipelines_in is None:
            return self.client.get_pipeline_id(name)
        found = (
            self.client.list_pipelines(
                filter=equals_filter("display_name", name), namespace=self.pipelines_in, page_size=2
            ).pipelines
            or []
        )
        return str(found[0].pipeline_id) if found else None

    def _version_id(self, pipeline_id: str, name: str, version: str | None) -> str:
        """The id of ``version``, or of the pipeline's only version when none is pinned."""
        found = (
            self.client.list_pipeline_versions(
                pipeline_id,
                page_size=2,
                filter=equals_filter("display_name", version) if version else None,
            ).pipeline_versions
            or []
        )
        if version and not found:
            raise PipelineNotFound(f"pipeline {name!r} has no version {version!r}")
        if not found:
            raise PipelineNotFound(f"pipeline {name!r} has no versions")
        if len(found) > 1:
            raise PipelineNotFound(
                f"pipeline {name!r} has several versions and none is pinned: set "
                "pipeline.version or pipeline.pipelineVersionRef (the newest by creation time "
                "is not necessarily the code in git)"
            )
        return str(found[0].pipeline_version_id)

    def _find_version(self, version: str) -> tuple[str, str]:
        """Pipeline and version ids of the PipelineVersion named ``version``, in any pipeline."""
        token = ""
        while True:
            page = self.client.list_pipelines(
                page_token=token, page_size=PAGE_SIZE, namespace=self.pipelines_in
            )
            for pipeline in page.pipelines or []:
                found = self.client.list_pipeline_versions(
                    pipeline.pipeline_id, page_size=1, filter=equals_filter("display_name", version)
                ).pipeline_versions
                if found:
                    return str(pipeline.pipeline_id), str(found[0].pipeline_version_id)
            token = page.next_page_token or ""
            if not token:
                raise PipelineNotFound(f"no KFP pipeline has a version named {version!r}")

    def _experiment_id(self, name: str) -> str:
        with self._experiments_lock:
            if name not in self._experiments:
                found = self.client.list_experiments(
                    filter=equals_filter("display_name", name),
                    namespace=self.namespace,
                    page_size=1,
                )
                self._experiments[name] = str(
                    found.experiments[0].experiment_id
                    if found.experiments
                    else self.client.create_experiment(name, namespace=self.namespace).experiment_id
                )
            return self._experiments[name]

    def find(self, run_name: str) -> str | None:
        """The id of the run with this display name, if one was created."""
        found = self.client.list_runs(
            filter=equals_filter("display_name", run_name), namespace=self.namespace, page_size=2
        )
        runs = found.runs or []
        if len(runs) > 1:
            log.warning("%d KFP runs share the name %s; adopting the first", len(runs), run_name)
        return str(runs[0].run_id) if runs else None

    def ensure(
        self,
        run_name: str,
        pipeline: ResolvedPipeline,
        parameters: dict[str, Any],
        service_account: str | None,
    ) -> tuple[str, bool]:
        """Create the run unless it exists; returns its id and whether this call created it."""
        existing = self.find(run_name)
        if existing is not None:
            return existing, False
        return self.create(run_name, pipeline, parameters, service_account), True

    def create(
        self,
        run_name: str,
        pipeline: ResolvedPipeline,
        parameters: dict[str, Any],
        service_account: str | None,
    ) -> str:
        """Create the run, without looking first: the caller has (see :meth:`ensure`)."""
        run = self.client.run_pipeline(
            experiment_id=pipeline.experiment_id,
            job_name=run_name,
            params=parameters,
            pipeline_id=pipeline.pipeline_id,
            version_id=pipeline.version_id,
            service_account=service_account,
        )
        return str(run.run_id)

    def state(self, run_id: str) -> RunState:
        """The run's state; ``DELETED`` when KFP no longer has it (someone deleted it)."""
        try:
            run = self.client.get_run(run_id)
        except ApiException as exc:
            if exc.status == 404:
                return RunState(DELETED_STATE, None)
            raise
        finished = run.finished_at
        terminal = str(run.state) in {"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"}
        return RunState(str(run.state), _rfc3339(finished) if terminal and finished else None)

    def terminate(self, run_id: str) -> None:
        """Terminate the run; one KFP no longer has is as ended as it gets."""
        try:
            self.client.terminate_run(run_id)
        except ApiException as exc:
            if exc.status != 404:
                raise


def _rfc3339(value: datetime | str) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value
