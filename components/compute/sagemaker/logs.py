"""Tail a job's CloudWatch log streams while it runs, so people see the script's output live.

SageMaker writes one stream per instance (``<job>/algo-1-<epoch>``, ``<job>/algo-2-<epoch>``),
and the streams appear only once instances start. A tuning job's trials are training jobs named
after it (``<tuning job>-001-<hash>/algo-1-<epoch>``), so it is followed by the prefix
``<tuning job>-`` and each line is labelled with its trial. Each :meth:`LogTailer.poll` lists the streams
again (paged), then reads every stream forward from where it stopped (paged with tokens).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from flywheel.components.compute.sagemaker.errors import is_not_found, is_throttling

# Upper bound on pages read per stream per poll, so one chatty stream cannot starve the poll loop.
MAX_PAGES_PER_POLL = 50
# How many empty reads in a row end the drain, and the most reads a drain makes.
EMPTY_READS_TO_END = 2
MAX_DRAIN_READS = 30


class LogTailer:
    def __init__(
        self, logs: Any, log_group: str, stream_prefix: str, sink: Callable[[str], None]
    ) -> None:
        self._logs = logs
        self._group = log_group
        self._prefix = stream_prefix
        self._sink = sink
        self._tokens: dict[str, str | None] = {}
        self._multi_stream = False

    def _streams(self) -> list[str]:
        names: list[str] = []
        request: dict[str, Any] = {"logGroupName": self._group, "logStreamNamePrefix": self._prefix}
        for _ in range(MAX_PAGES_PER_POLL):
            page = self._logs.describe_log_streams(**request)
            names.extend(stream["logStreamName"] for stream in page.get("logStreams", []))
            if not page.get("nextToken"):
                break
            request["nextToken"] = page["nextToken"]
        return names

    def _read(self, stream: str) -> int:
        lines = 0
        label = stream.removeprefix(self._prefix)
        for _ in range(MAX_PAGES_PER_POLL):
            request: dict[str, Any] = {
                "logGroupName": self._group,
                "logStreamName": stream,
                "startFromHead": True,
            }
            token = self._tokens.get(stream)
            if token:
                request["nextToken"] = token
            page = self._logs.get_log_events(**request)
            for event in page.get("events", []):
                message = event["message"].rstrip("\n")
                self._sink(f"[{label}] {message}" if self._multi_stream else message)
                lines += 1
            next_token = page.get("nextForwardToken")
            # CloudWatch returns the token it was given when a stream has nothing newer.
            if not page.get("events") or next_token == token:
                self._tokens[stream] = next_token or token
                break
            self._tokens[stream] = next_token
        return lines

    def _read_all(self) -> int:
        streams = self._streams()
        self._multi_stream = self._multi_stream or len(streams) > 1
        return sum(self._read(stream) for stream in sorted(streams))

    def poll(self) -> int:
        """Emit every log line written since the last poll; the number of lines emitted.

        A missing log group (no instance has started yet) and throttling are not errors: the
        lines are read on a later poll.
        """
        try:
            return self._read_all()
        except ClientError as error:
            if is_not_found(error) or is_throttling(error):
                return 0
            raise

    def drain(self, sleep: Callable[[float], None], pause: float) -> int:
        """After the job ended: read every stream until all read empty twice in a row.

        CloudWatch shows a line seconds after it is written, so the last lines can appear after
        the Describe that saw the job end. A throttled read proves nothing and does not count as
        empty; it is tried again after ``pause``, as is every read.
        """
        emitted = empty = 0
        for _ in range(MAX_DRAIN_READS):
            try:
                lines = self._read_all()
            except ClientError as error:
                if not is_not_found(error) and not is_throttling(error):
                    raise
                lines = None if is_throttling(error) else 0
            if lines is not None:
                emitted += lines
                empty = empty + 1 if lines == 0 else 0
                if empty == EMPTY_READS_TO_END:
                    break
            sleep(pause)
        return emitted
