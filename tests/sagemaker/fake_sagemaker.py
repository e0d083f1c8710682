"""A SageMaker training API on 127.0.0.1 that behaves like the real one where moto does not.

moto completes a training job the moment it is created, so kills, retries and cancellations
mid-job cannot be tested against it. This server keeps every job ``InProgress`` until the test
says how it ends, records every call in arrival order, can take its time answering
CreateTrainingJob (the job appears only when the call returns, as with the real service), and
refuses to reuse a name, as SageMaker does. Only the operations the launcher calls exist; any
other is refused. S3 and CloudWatch Logs stay on moto.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3

from .moto_sagemaker import one_file_archive

ACCOUNT = "123456789012"


def model_archive() -> bytes:
    return one_file_archive("model.txt", b"trained by the fake SageMaker\n")


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class FakeSageMaker:
    """Training jobs that stay InProgress until :meth:`finish`; ``calls`` lists every request."""

    def __init__(self, s3_endpoint: str, *, create_delay: float = 0.0) -> None:
        self.create_delay = create_delay
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._s3 = boto3.client(
            "s3",
            endpoint_url=s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeSageMaker:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- what tests look at and do -------------------------------------------------------------

    def names(self, operation: str) -> list[str]:
        with self._lock:
            return [params["TrainingJobName"] for op, params in self.calls if op == operation]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; calls so far: {[c[0] for c in self.calls]}")
            time.sleep(0.05)

    def finish(self, name: str, status: str, reason: str = "") -> None:
        """End ``name`` as ``status``; a Completed job leaves its model.tar.gz where SageMaker would."""
        with self._lock:
            job = self.jobs[name]
            job["status"], job["reason"] = status, reason
        if status == "Completed":
            bucket, _, prefix = job["request"]["OutputDataConfig"]["S3OutputPath"][5:].partition(
                "/"
            )
            key = f"{prefix.strip('/')}/{name}/output/model.tar.gz".lstrip("/")
            self._s3.put_object(Bucket=bucket, Key=key, Body=model_archive())

    # -- the API -------------------------------------------------------------------------------

    def _create(self, params: dict[str, Any]) -> dict[str, Any]:
        time.sleep(self.create_delay)
        name = params["TrainingJobName"]
        with self._lock:
            if name in self.jobs:
                raise _Refused("ResourceInUse", f"Training job names must be unique: {name}")
            arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:training-job/{name}"
            self.jobs[name] = {"status": "InProgress", "reason": "", "arn": arn, "request": params}
        return {"TrainingJobArn": arn}

    def _job(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self.jobs.get(params["TrainingJobName"])
        if job is None:
            raise _Refused("ValidationException", "Requested resource not found.")
        return job

    def _describe(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            job = self._job(params)
            shown = job["status"]
            if shown == "Stopping":  # the next look finds it stopped
                job["status"] = "Stopped"
        request, name = job["request"], params["TrainingJobName"]
        description = {
            "TrainingJobName": name,
            "TrainingJobArn": job["arn"],
            "TrainingJobStatus": shown,
            "SecondaryStatus": shown,
            "AlgorithmSpecification": request["AlgorithmSpecification"],
            "ResourceConfig": request["ResourceConfig"],
            "StoppingCondition": request["StoppingCondition"],
            "ModelArtifacts": {
                "S3ModelArtifacts": f"{request['OutputDataConfig']['S3OutputPath'].rstrip('/')}"
                f"/{name}/output/model.tar.gz"
            },
            "CreationTime": time.time(),
        }
        if job["reason"]:
            description["FailureReason"] = job["reason"]
        return description

    def _stop(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            job = self._job(params)
            if job["status"] != "InProgress":
                raise _Refused("ValidationException", f"The job is {job['status']}")
            job["status"] = "Stopping"
        return {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self
        operations = {
            "CreateTrainingJob": self._create,
            "DescribeTrainingJob": self._describe,
            "StopTrainingJob": self._stop,
        }

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                operation = self.headers.get("X-Amz-Target", "").removeprefix("SageMaker.")
                params = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                with fake._lock:
                    fake.calls.append((operation, params))
                try:
                    if operation not in operations:
                        raise _Refused("UnknownOperationException", operation)
                    status, body = 200, operations[operation](params)
                except _Refused as refused:
                    status, body = 400, {"__type": refused.code, "message": str(refused)}
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: object) -> None:
                pass

        return Handler
