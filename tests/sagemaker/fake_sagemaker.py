"""A SageMaker training and processing API on 127.0.0.1 that behaves like the real one where moto
does not.

moto completes a job the moment it is created, so kills, retries and cancellations mid-job cannot
be tested against it. This server keeps the real service's rules where moto is lenient:

- every job stays ``InProgress`` until the test says how it ends (with a stop reason such as
  ``MaxWaitTimeExceeded`` as the secondary status, as SageMaker reports a spot time-out);
- CreateTrainingJob or CreateProcessingJob can take its time (the job appears only when the call
  returns, as with the real service);
- a name is taken until the service frees it: :meth:`delete` does what DeleteTrainingJob or a
  retention rule does (the job is ``Deleting``, its name still taken), and only :meth:`purge`
  frees the name, as the service does later;
- Describe and List can be throttled N times, at any point (per account, as the service does);
- List<Kind>Jobs answers by ``NameContains``, a page of ``MaxResults`` at a time;
- a tuning job that :meth:`finish` completes leaves one trial, a Completed training job with its
  model, as its ``BestTrainingJob`` (and in ListTrainingJobsForHyperParameterTuningJob).

Every call is recorded in arrival order. Only the operations the launcher calls exist; any other is
refused. S3 and CloudWatch Logs stay on moto.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3

from .moto_sagemaker import one_file_archive

ACCOUNT = "123456789012"
KINDS = ("Training", "Processing", "HyperParameterTuning")
TUNING = "HyperParameterTuning"
PROCESSED = b"processed by the fake SageMaker\n"


def model_archive() -> bytes:
    return one_file_archive("model.txt", b"trained by the fake SageMaker\n")


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class FakeSageMaker:
    """Jobs that stay InProgress until :meth:`finish`; ``calls`` lists every request."""

    def __init__(self, s3_endpoint: str, *, create_delay: float = 0.0) -> None:
        self.create_delay = create_delay
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.throttles = 0
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
        """The job name of every ``operation`` call so far (``CreateProcessingJob``...), in order."""
        key = re.sub(r"^(Create|Describe|Stop)", "", operation) + "Name"
        with self._lock:
            return [params[key] for op, params in self.calls if op == operation]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; calls so far: {[c[0] for c in self.calls]}")
            time.sleep(0.05)

    def throttle(self, times: int) -> None:
        """Refuse the next ``times`` Describe and List calls with ThrottlingException."""
        with self._lock:
            self.throttles += times

    def delete(self, name: str) -> None:
        """What DeleteTrainingJob (or a retention rule) does: the job is Deleting, its name taken."""
        with self._lock:
            self.jobs[name]["status"] = "Deleting"

    def purge(self, name: str) -> None:
        """The service finishes deleting ``name``: the job is gone and its name is free again."""
        with self._lock:
            del self.jobs[name]

    def finish(
        self,
        name: str,
        status: str,
        reason: str = "",
        *,
        secondary: str = "",
        exit_message: str = "",
        outputs: Mapping[str, Mapping[str, bytes]] | None = None,
    ) -> None:
        """End ``name`` as ``status``; a Completed job leaves what SageMaker would have uploaded.

        ``secondary`` is the training job's last secondary status (``MaxWaitTimeExceeded``...),
        ``status`` itself by default. A training job leaves its model.tar.gz; a processing job,
        for each output, the files ``outputs`` gives it (relative path to content), or one file
        when ``outputs`` is None.
        """
        with self._lock:
            job = self.jobs[name]
            job["status"], job["reason"], job["exit_message"] = status, reason, exit_message
            job["secondary"] = secondary or status
        if status != "Completed":
            return
        if job["kind"] == "Processing":
            self._upload_outputs(job["request"], outputs)
        elif job["kind"] == TUNING:
            self._best_trial(name, job)
        else:
            bucket, _, prefix = job["request"]["OutputDataConfig"]["S3OutputPath"][5:].partition(
                "/"
            )
            key = f"{prefix.strip('/')}/{name}/output/model.tar.gz".lstrip("/")
            self._s3.put_object(Bucket=bucket, Key=key, Body=model_archive())

    def _best_trial(self, name: str, job: dict[str, Any]) -> None:
        """The tuning job's one trial: a Completed training job under SageMaker's trial name."""
        definition = job["request"]["TrainingJobDefinition"]
        trial = f"{name}-001-0a1b2c3d"
        ranges = job["request"]["HyperParameterTuningJobConfig"].get("ParameterRanges", {})
        tuned = {
            r["Name"]: r["Values"][0] if "Values" in r else r["MinValue"]
            for kind in ranges.values()
            for r in kind
        }
        with self._lock:
            self.jobs[trial] = {
                "kind": "Training",
                "status": "Completed",
                "secondary": "Completed",
                "reason": "",
                "exit_message": "",
                "arn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:training-job/{trial}",
                "request": {**definition, "TrainingJobName": trial},
                "tuning_job": name,
                "tuned": tuned,
            }
        self.finish(trial, "Completed")

    def _trial_summaries(self, name: str) -> list[dict[str, Any]]:
        objective = self.jobs[name]["request"]["HyperParameterTuningJobConfig"][
            "HyperParameterTuningJobObjective"
        ]
        return [
            {
                "TrainingJobName": trial,
                "TrainingJobArn": job["arn"],
                "CreationTime": time.time(),
                "TrainingJobStatus": job["status"],
                "TunedHyperParameters": job["tuned"],
                "FinalHyperParameterTuningJobObjectiveMetric": {**objective, "Value": 0.5},
            }
            for trial, job in sorted(self.jobs.items())
            if job.get("tuning_job") == name
        ]

    def _list_trials(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return {
                "TrainingJobSummaries": self._trial_summaries(params["HyperParameterTuningJobName"])
            }

    def _describe_tuning(self, job: dict[str, Any], name: str, status: str) -> dict[str, Any]:
        request = job["request"]
        description = {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobArn": job["arn"],
            "HyperParameterTuningJobConfig": request["HyperParameterTuningJobConfig"],
            "TrainingJobDefinition": request["TrainingJobDefinition"],
            "HyperParameterTuningJobStatus": status,
            "CreationTime": time.time(),
            "TrainingJobStatusCounters": {},
            "ObjectiveStatusCounters": {},
        }
        trials = self._trial_summaries(name)
        if trials:
            description["BestTrainingJob"] = trials[0]
        return description

    def _upload_outputs(
        self, request: dict[str, Any], outputs: Mapping[str, Mapping[str, bytes]] | None
    ) -> None:
        for output in request.get("ProcessingOutputConfig", {}).get("Outputs", []):
            files = {"result.txt": PROCESSED} if outputs is None else outputs[output["OutputName"]]
            bucket, _, prefix = output["S3Output"]["S3Uri"][5:].partition("/")
            for relative, body in files.items():
                key = f"{prefix.strip('/')}/{relative}".lstrip("/")
                self._s3.put_object(Bucket=bucket, Key=key, Body=body)

    # -- the API -------------------------------------------------------------------------------

    def _create(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        time.sleep(self.create_delay)
        name = params[f"{kind}JobName"]
        with self._lock:
            if name in self.jobs:
                raise _Refused("ResourceInUse", f"{kind} job names must be unique: {name}")
            noun = "hyper-parameter-tuning" if kind == TUNING else kind.lower()
            arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:{noun}-job/{name}"
            self.jobs[name] = {
                "kind": kind,
                "status": "InProgress",
                "secondary": "Training",
                "reason": "",
                "exit_message": "",
                "arn": arn,
                "request": params,
            }
        return {f"{kind}JobArn": arn}

    def _job(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        job = self.jobs.get(params[f"{kind}JobName"])
        if job is None or job["kind"] != kind:
            raise _Refused("ValidationException", "Requested resource not found.")
        return job

    def _describe(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            job = self._job(kind, params)
            shown = job["status"]
            if shown == "Stopping":  # the next look finds it stopped
                job["status"] = job["secondary"] = "Stopped"
        describe = {
            "Processing": self._describe_processing,
            TUNING: self._describe_tuning,
        }.get(kind, self._describe_training)
        with self._lock:
            description = describe(job, params[f"{kind}JobName"], shown)
        if kind == "Training":
            description["SecondaryStatus"] = "Stopping" if shown == "Stopping" else job["secondary"]
        if job["reason"]:
            description["FailureReason"] = job["reason"]
        return description

    @staticmethod
    def _describe_processing(job: dict[str, Any], name: str, status: str) -> dict[str, Any]:
        # As DescribeProcessingJob answers: the request back, the status, no secondary statuses.
        shown = {
            key: value
            for key, value in job["request"].items()
            if key not in ("ProcessingJobName", "Tags")
        }
        description = {
            **shown,
            "ProcessingJobName": name,
            "ProcessingJobArn": job["arn"],
            "ProcessingJobStatus": status,
            "CreationTime": time.time(),
        }
        if job["exit_message"]:
            description["ExitMessage"] = job["exit_message"]
        return description

    @staticmethod
    def _describe_training(job: dict[str, Any], name: str, shown: str) -> dict[str, Any]:
        request = job["request"]
        return {
            "TrainingJobName": name,
            "TrainingJobArn": job["arn"],
            "TrainingJobStatus": shown,
            "AlgorithmSpecification": request["AlgorithmSpecification"],
            "ResourceConfig": request["ResourceConfig"],
            "StoppingCondition": request["StoppingCondition"],
            **{
                key: request[key]
                for key in ("CheckpointConfig", "EnableManagedSpotTraining")
                if key in request
            },
            "ModelArtifacts": {
                "S3ModelArtifacts": f"{request['OutputDataConfig']['S3OutputPath'].rstrip('/')}"
                f"/{name}/output/model.tar.gz"
            },
            "CreationTime": time.time(),
        }

    def _list(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        contains, size = params.get("NameContains", ""), params.get("MaxResults", 10)
        start = int(params.get("NextToken", "0"))
        with self._lock:
            names = sorted(
                name for name, job in self.jobs.items() if job["kind"] == kind and contains in name
            )
            page = [
                {
                    f"{kind}JobName": name,
                    f"{kind}JobArn": self.jobs[name]["arn"],
                    f"{kind}JobStatus": self.jobs[name]["status"],
                    "CreationTime": time.time(),
                }
                for name in names[start : start + size]
            ]
        answer: dict[str, Any] = {f"{kind}JobSummaries": page}
        if start + size < len(names):
            answer["NextToken"] = str(start + size)
        return answer

    def _stop(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            job = self._job(kind, params)
            if job["status"] != "InProgress":
                raise _Refused("ValidationException", f"The job is {job['status']}")
            job["status"] = "Stopping"
        return {}

    def _maybe_throttle(self, operation: str) -> None:
        with self._lock:
            if self.throttles and operation.startswith(("Describe", "List")):
                self.throttles -= 1
                raise _Refused("ThrottlingException", "Rate exceeded")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self
        operations = {
            f"{verb}{kind}Job": functools.partial(method, kind)
            for kind in KINDS
            for verb, method in (
                ("Create", self._create),
                ("Describe", self._describe),
                ("Stop", self._stop),
            )
        }
        operations.update(
            {f"List{kind}Jobs": functools.partial(self._list, kind) for kind in KINDS}
        )
        operations["ListTrainingJobsForHyperParameterTuningJob"] = self._list_trials

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                operation = self.headers.get("X-Amz-Target", "").removeprefix("SageMaker.")
                params = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                with fake._lock:
                    fake.calls.append((operation, params))
                try:
                    if operation not in operations:
                        raise _Refused("UnknownOperationException", operation)
                    fake._maybe_throttle(operation)
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
