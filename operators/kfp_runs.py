"""Launching and finding KFP runs by their deterministic run key, through ``kfp.Client``.

The run key is in the run's display name (see :func:`operators.decision.run_name`). Creation
always looks the name up first, so a retry after a crash adopts the run it already created
instead of creating a second one: "already exists" means "already done".
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

from flywheel.operators.policy import PipelineRef

log = logging.getLogger(__name__)
# Projected service-account token with the KFP audience; mounted by the Helm chart.
TOKEN_PATH = Path("/var/run/secrets/kubeflow/pipelines/token")
# (connect, read) seconds for every KFP call: kfp.Client sends none, and a hung call would
# hold its worker thread, and so the policy, for good.
KFP_TIMEOUT = (5.0, 30.0)


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
    """Give every request of the client a timeout; its API methods cannot pass one through.

    All of the client's service APIs share one generated ``ApiClient`` and so one REST client.
    """
    rest = client._run_api.api_client.rest_client
    request = rest.request

    def bounded(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return request(*args, _request_timeout=_request_timeout or timeout, **kwargs)

    rest.request = bounded


def _equals(key: str, value: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "stringValue": value}]})


class RunLauncher:
    """KFP operations the operator needs, keyed by run names; one instance per KFP endpoint."""

    def __init__(self, client: kfp.Client, namespace: str | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self._experiments: dict[str, str] = {}
        # Policies resolve concurrently; without it, each would create its own "Default".
        self._experiments_lock = threading.Lock()

    def resolve(self, ref: PipelineRef) -> ResolvedPipeline:
        """Find pipeline and version ids by name, and the experiment (created if missing)."""
        name, version = ref.name, ref.version
        pipeline_id = self.client.get_pipeline_id(name) if name else None
        if pipeline_id is None:
            raise PipelineNotFound(f"no KFP pipeline named {name!r}")
        versions = self.client.list_pipeline_versions(
            pipeline_id,
            page_size=1,
            sort_by="created_at desc",
            filter=_equals("display_name", version) if version else None,
        )
        if not versions.pipeline_versions:
            raise PipelineNotFound(
                f"pipeline {name!r} has no version {version!r}"
                if version
                else f"pipeline {name!r} has no versions"
            )
        return ResolvedPipeline(
            pipeline_id,
            versions.pipeline_versions[0].pipeline_version_id,
            self._experiment_id(ref.experiment),
        )

    def _experiment_id(self, name: str) -> str:
        with self._experiments_lock:
            if name not in self._experiments:
                found = self.client.list_experiments(
                    filter=_equals("display_name", name), namespace=self.namespace, page_size=1
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
            filter=_equals("display_name", run_name), namespace=self.namespace, page_size=2
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
        run = self.client.run_pipeline(
            experiment_id=pipeline.experiment_id,
            job_name=run_name,
            params=parameters,
            pipeline_id=pipeline.pipeline_id,
            version_id=pipeline.version_id,
            service_account=service_account,
        )
        return str(run.run_id), True

    def state(self, run_id: str) -> RunState:
        run = self.client.get_run(run_id)
        finished = run.finished_at
        terminal = str(run.state) in {"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"}
        return RunState(str(run.state), _rfc3339(finished) if terminal and finished else None)

    def terminate(self, run_id: str) -> None:
        self.client.terminate_run(run_id)


def _rfc3339(value: datetime | str) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value
