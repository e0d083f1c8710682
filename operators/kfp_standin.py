"""A KFP API stand-in: the v2beta1 endpoints the operator uses, in memory, on 127.0.0.1.

For ``python -m flywheel.operators --dev`` (trying the operator without Kubeflow) and for tests. It
serves pipelines, versions, experiments and runs (of a stored version, or of a spec sent inline as
``flywheel submit`` does); runs can be finished by hand or after a delay.
It also answers "crash after create" on demand, to prove that a retry adopts instead of
duplicating.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

PREFIX = "/apis/v2beta1"
TERMINAL = {"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _now_precise() -> str:
    """RFC 3339 with microseconds: versions synced in one second still sort by creation."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _matches(item: dict[str, Any], raw_filter: str | None) -> bool:
    """Apply a v2beta1 filter of EQUALS predicates (the only kind the operator sends)."""
    if not raw_filter:
        return True
    for predicate in json.loads(raw_filter).get("predicates", []):
        if predicate.get("operation") not in ("EQUALS", 1):
            raise ValueError(f"unsupported filter operation {predicate.get('operation')!r}")
        expected = next(
            (predicate[k] for k in ("stringValue", "string_value", "intValue") if k in predicate),
            None,
        )
        if str(item.get(predicate["key"])) != str(expected):
            return False
    return True


@dataclass
class KfpStandIn:
    """State and controls of the stand-in. Start it with ``with KfpStandIn() as kfp: ...``."""

    finish_after_seconds: float | None = None  # runs succeed by themselves after this long
    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    create_calls: int = 0
    crash_after_next_create: bool = False  # store the run, then answer 500 as if we died
    down_after_crash: bool = False  # with it: answer 503 to everything after that crash
    down: bool = False
    refuse_terminates: int = 0  # answer 500 to this many terminate calls
    # Executes a created run: called in a thread of its own with the run's display name and
    # parameters; the state it returns ends the run, ``None`` leaves it to the timer (the --dev
    # world deploys on moto with it).
    executor: Callable[[str, dict[str, Any]], str | None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the stand-in is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add_pipeline(self, name: str, *versions: str, namespace: str | None = None) -> str:
        pipeline_id = str(uuid.uuid4())
        with self.lock:
            self.pipelines[pipeline_id] = {
                "pipeline_id": pipeline_id,
                "display_name": name,
                "namespace": namespace,
                "created_at": _now(),
            }
            self.versions[pipeline_id] = [
                {
                    "pipeline_id": pipeline_id,
                    "pipeline_version_id": str(uuid.uuid4()),
                    "display_name": version,
                    "created_at": _now(),
                }
                for version in versions or ("v1",)
            ]
        return pipeline_id

    def sync_pipeline(
        self,
        name: str,
        versions: Sequence[tuple[str, dict[str, Any]]],
        namespace: str | None = None,
    ) -> str:
        """What a GitOps sync leaves in KFP: pipeline ``name`` with exactly these versions.

        Versions not there yet are created in name order, as Argo CD orders one wave's objects,
        each later than the one before; versions already there keep their creation time; others
        are pruned. ``versions`` holds (version name, pipeline spec); ``namespace`` is a profile
        namespace of multi-user KFP, None for a shared (standalone) pipeline.
        """
        with self.lock:
            pipeline_id = next(
                (
                    p["pipeline_id"]
                    for p in self.pipelines.values()
                    if p["display_name"] == name and p["namespace"] == namespace
                ),
                None,
            )
        if pipeline_id is None:
            pipeline_id = self.add_pipeline(name, namespace=namespace)
            with self.lock:
                self.versions[pipeline_id] = []
        wanted = dict(versions)
        with self.lock:
            kept = [v for v in self.versions[pipeline_id] if v["display_name"] in wanted]
            present = {v["display_name"] for v in kept}
            for version in sorted(set(wanted) - present):
                time.sleep(0.002)  # distinct, increasing creation times
                kept.append(
                    {
                        "pipeline_id": pipeline_id,
                        "pipeline_version_id": str(uuid.uuid4()),
                        "display_name": version,
                        "pipeline_spec": wanted[version],
                        "created_at": _now_precise(),
                    }
                )
            self.versions[pipeline_id] = kept
        return pipeline_id

    def version_spec(self, version_id: str) -> dict[str, Any] | None:
        """The pipeline spec stored with a version (versions made by :meth:`sync_pipeline`)."""
        with self.lock:
            for versions in self.versions.values():
                for version in versions:
                    if version["pipeline_version_id"] == version_id:
                        return version.get("pipeline_spec")
        return None

    def finish(self, run_id: str, state: str = "SUCCEEDED") -> None:
        with self.lock:
            self.runs[run_id].update(state=state, finished_at=_now())

    def runs_named(self, display_name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.runs.values() if r["display_name"] == display_name]

    def __enter__(self) -> KfpStandIn:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            name="kfp-standin",
            kwargs={"poll_interval": 0.1},
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- the API, called by the request handler with the lock held ---------------------------

    def _refresh(self, run: dict[str, Any]) -> dict[str, Any]:
        if (
            self.finish_after_seconds is not None
            and run["state"] not in TERMINAL
            and time.monotonic() - run["_started"] >= self.finish_after_seconds
        ):
            run.update(state="SUCCEEDED", finished_at=_now())
        return {k: v for k, v in run.items() if not k.startswith("_")}

    def _route(
        self, method: str, path: str, query: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        if self.down:
            return 503, {"error": "the stand-in is down"}
        if method == "GET" and path == "/healthz":
            return 200, {"multi_user": False}
        if method == "GET" and path == "/pipelines":
            # As multi-user KFP: without a namespace, only shared pipelines (no namespace).
            namespace = query.get("namespace") or None
            items = [
                p
                for p in self.pipelines.values()
                if _matches(p, query.get("filter")) and p.get("namespace") == namespace
            ]
            return 200, {"pipelines": items, "total_size": len(items)}
        if method == "GET" and (m := re.fullmatch(r"/pipelines/([^/]+)/versions", path)):
            items = [
                v for v in self.versions.get(m.group(1), []) if _matches(v, query.get("filter"))
            ]
            items.sort(key=lambda v: v["created_at"], reverse="desc" in query.get("sort_by", ""))
            return 200, {"pipeline_versions": items, "total_size": len(items)}
        if method == "GET" and path == "/experiments":
            items = [e for e in self.experiments.values() if _matches(e, query.get("filter"))]
            return 200, {"experiments": items, "total_size": len(items)}
        if method == "POST" and path == "/experiments":
            experiment = {
                "experiment_id": str(uuid.uuid4()),
                "display_name": body["display_name"],
                "namespace": body.get("namespace"),
                "created_at": _now(),
            }
            self.experiments[experiment["experiment_id"]] = experiment
            return 200, experiment
        if method == "GET" and path == "/runs":
            items = [
                self._refresh(r) for r in self.runs.values() if _matches(r, query.get("filter"))
            ]
            return 200, {"runs": items, "total_size": len(items)}
        if method == "POST" and path == "/runs":
            return self._create_run(body)
        if method == "GET" and (m := re.fullmatch(r"/runs/([^/:]+)", path)):
            run = self.runs.get(m.group(1))
            return (200, self._refresh(run)) if run else (404, {"error": "run not found"})
        if method == "POST" and (m := re.fullmatch(r"/runs/([^/:]+):terminate", path)):
            if m.group(1) not in self.runs:
                return 404, {"error": "run not found"}
            if self.refuse_terminates:
                self.refuse_terminates -= 1
                return 500, {"error": "terminate refused by the stand-in"}
            self.runs[m.group(1)].update(state="CANCELED", finished_at=_now())
            return 200, {}
        return 404, {"error": f"no route for {method} {path}"}

    def _create_run(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.create_calls += 1
        reference = body.get("pipeline_version_reference") or {}
        inline_spec = body.get("pipeline_spec")
        if inline_spec is None and reference.get("pipeline_id") not in self.pipelines:
            return 400, {"error": "unknown pipeline"}
        run_id = str(uuid.uuid4())
        self.runs[run_id] = {
            "run_id": run_id,
            "display_name": body["display_name"],
            "experiment_id": body.get("experiment_id"),
            "state": "RUNNING",
            "pipeline_version_reference": reference,
            "pipeline_spec": inline_spec,
            "runtime_config": body.get("runtime_config") or {},
            "service_account": body.get("service_account"),
            "created_at": _now(),
            "_started": time.monotonic(),
        }
        if self.executor is not None:  # a stored run runs, whatever its creator heard
            threading.Thread(
                target=self._execute, args=(run_id,), name=f"run-{run_id}", daemon=True
            ).start()
        if self.crash_after_next_create:
            self.crash_after_next_create = False
            self.down = self.down_after_crash
            return 500, {"error": "simulated crash after the run was stored"}
        return 200, self._refresh(self.runs[run_id])

    def _execute(self, run_id: str) -> None:
        assert self.executor is not None
        run = self.runs[run_id]
        parameters = (run["runtime_config"] or {}).get("parameters") or {}
        try:
            state = self.executor(run["display_name"], parameters)
        except Exception:  # a failed task fails its run, as in KFP
            state = "FAILED"
        if state is not None:
            self.finish(run_id, state)


def _handler_for(state: KfpStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            parsed = urlparse(self.path)
            if not parsed.path.startswith(PREFIX):
                self._reply(404, {"error": "not a v2beta1 path"})
                return
            query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            with state.lock:
                status, payload = state._route(method, parsed.path[len(PREFIX) :], query, body)
            self._reply(status, payload)

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:
            """Silence per-request logging; the operator logs what matters."""

    return Handler
