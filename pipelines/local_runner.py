"""Run a pipeline on the embedded default: KFP's local runner, in subprocesses, with caching.

kfp.local prints every task's executor input and output; that is kept in a log file (and each
task's own output in ``task.log`` beside its artifacts), while the console gets a progress bar
naming the task at work and the latest line it printed. Every task runs in a session of its own
(``task_processes``), so a signal ends its whole process tree. When a task fails, the step's own
one-line reason (``components.steps.runtime``), the end of the script's traceback and the task's log
are raised as ``PipelineFailed``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kfp import local
from kfp.dsl.graph_component import GraphComponent
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from flywheel.components.errors import FlywheelError
from flywheel.components.steps.runtime import EVENTS_VARIABLE, last_failure
from flywheel.pipelines.catalog import task_names
from flywheel.pipelines.failures import failure_message
from flywheel.pipelines.run_record import LocalRun, TaskLog
from flywheel.pipelines.task_processes import TASK_LOG, task_processes
from flywheel.pipelines.tracking_setup import create_local_store

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXECUTING = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
_CACHE_HIT = re.compile(r"Task (\S+) cache hit")
_SKIPPED = re.compile(r"Skipping (?:conditional )?task (\S+)")
# Lines that say nothing to a person watching: kfp.local's artifact dumps
# (``train: Dataset( name=...``, ``uri=...``, ``metadata={...} )``, ``Output: ...``) and the
# training toolkit's environment listing (``SM_HOSTS=...``).
_NOT_STATUS = re.compile(r"^(\w+: \w+\( name=|name=|uri=|metadata=|Output: |SM_[A-Z_]+=)")


class PipelineFailed(FlywheelError):
    """A task failed; the message is the failing step's own reason where it gave one, the end of
    the script's traceback, and the path of the task's log."""


class _TaskWatcher(logging.Filter):
    """Reads kfp.local's log records (it logs through the root logger) to follow the run.

    A live bar draws only on a terminal; anywhere else (a pipe, a CI log) each task that ends
    gets one plain line instead, so a person reading the output still sees the run move.
    """

    def __init__(self, tasks: TaskLog, progress: Progress, bar: Any, console: Console) -> None:
        super().__init__()
        self.tasks, self.progress, self.bar, self.console = tasks, progress, bar, console
        self.started_at: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = _ANSI.sub("", record.getMessage())
        if match := _EXECUTING.search(message):
            self.tasks.started.append(match.group(1))
            self.started_at[match.group(1)] = time.monotonic()
            self.progress.update(self.bar, description=match.group(1))
        elif match := _FINISHED.search(message):
            name, status = match.groups()
            (self.tasks.succeeded if status == "SUCCESS" else self.tasks.failed).append(name)
            seconds = time.monotonic() - self.started_at.get(name, time.monotonic())
            self._ended(
                name, f"{'done' if status == 'SUCCESS' else status.lower()} in {seconds:.1f} s"
            )
        elif match := _CACHE_HIT.search(message):
            self.tasks.cached.append(match.group(1))
            self._ended(match.group(1), "from cache")
        elif match := _SKIPPED.search(message):
            self.tasks.skipped.append(match.group(1))
            self._ended(match.group(1), "skipped")
        return True

    def _ended(self, name: str, how: str) -> None:
        self.progress.advance(self.bar)
        if not self.console.is_terminal:
            task = self.progress.tasks[self.bar]
            self.console.print(
                f"{name}: {how} ({task.completed:g}/{task.total:g})", highlight=False
            )


class _LogTee(io.TextIOBase):
    """Everything to the log file; the console shows the latest meaningful line under the bar."""

    def __init__(self, log: io.TextIOBase, progress: Progress, bar: Any, echo: bool) -> None:
        self.log, self.progress, self.bar, self.echo = log, progress, bar, echo

    def write(self, text: str) -> int:
        self.log.write(text)
        if self.echo:
            sys.__stdout__.write(text)
        for line in text.splitlines():
            line = _ANSI.sub("", line).strip()
            if (
                line
                and not line.startswith(("{", "}", '"', "[KFP Executor"))
                and line.rstrip(",") not in ("[", "]")
                and set(line) != {"-"}  # kfp.local's separator lines
                and " - INFO - " not in line
                and not _NOT_STATUS.match(line)
            ):
                self.progress.update(self.bar, status=line[:60])
        return len(text)

    def flush(self) -> None:
        self.log.flush()


@contextlib.contextmanager
def _quiet_kfp_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        # Display names and Kubernetes settings matter on a cluster; locally they are no-ops.
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
        yield


def run_locally(
    pipeline: GraphComponent,
    arguments: Mapping[str, Any],
    *,
    pipeline_root: Path,
    cache: bool = True,
    verbose: bool = False,
    console: Console | None = None,
) -> LocalRun:
    """Run ``pipeline`` with ``arguments`` on kfp.local's SubprocessRunner and report how it went."""
    # Bind the progress display to the real stream now: during the run, stdout goes to the log.
    shown_on = console or Console(stderr=True)
    console = Console(file=shown_on.file, force_terminal=shown_on.is_terminal, width=shown_on.width)
    pipeline_root = pipeline_root.resolve()
    pipeline_root.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in pipeline_root.iterdir()}
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        enable_caching=cache,
        raise_on_error=True,
    )
    tasks = TaskLog()
    log_file = pipeline_root / "logs" / f"{pipeline.name}-latest.log"
    log_file.parent.mkdir(exist_ok=True)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[status]}"),
        console=console,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
        # Off a terminal the bar cannot redraw; the watcher prints a line per task instead.
        disable=not console.is_terminal,
    )
    bar = progress.add_task("starting", total=len(task_names(pipeline)), status="")
    watcher = _TaskWatcher(tasks, progress, bar, console)
    root_logger = logging.getLogger()
    # kfp.local raises the root logger to INFO only while a task executes; its cache hits are
    # logged outside that, and a record below the logger's level never reaches the watcher. A
    # handler that drops them keeps ``logging.info`` from installing one that prints them.
    previous_level = root_logger.level
    dropped = logging.NullHandler()
    previous_events = os.environ.get(EVENTS_VARIABLE)
    create_local_store()  # every input is checked by now; the tasks are about to track
    try:
        with (
            task_processes() as processes,
            log_file.open("w") as log,
            progress,
            _quiet_kfp_warnings(),
            contextlib.redirect_stdout(_LogTee(log, progress, bar, verbose)),
        ):
            os.environ[EVENTS_VARIABLE] = str(processes.scratch / "events.jsonl")
            root_logger.setLevel(min(previous_level or logging.WARNING, logging.INFO))
            root_logger.addHandler(dropped)
            root_logger.addFilter(watcher)
            try:
                task = pipeline(**arguments)
            except RuntimeError as error:
                failed = tasks.failed[-1] if tasks.failed else "a task"
                reason = last_failure() or f"{failed} failed: {_ANSI.sub('', str(error))}"
                log.flush()
                task_log = _task_log(_run_dir(pipeline, pipeline_root, before), failed)
                raise PipelineFailed(failure_message(reason, task_log or log_file)) from None
            finally:
                root_logger.removeFilter(watcher)
                root_logger.removeHandler(dropped)
                root_logger.setLevel(previous_level)
    finally:
        if previous_events is None:
            os.environ.pop(EVENTS_VARIABLE, None)
        else:
            os.environ[EVENTS_VARIABLE] = previous_events
    run_dir = _run_dir(pipeline, pipeline_root, before)
    return LocalRun(outputs=dict(task.outputs), run_dir=run_dir, log_file=log_file, tasks=tasks)


def _run_dir(pipeline: GraphComponent, pipeline_root: Path, before: set[str]) -> Path:
    """The folder kfp.local made for this run: the newest of the pipeline's that is new."""
    new_dirs = sorted(
        p for p in pipeline_root.glob(f"{pipeline.name}-*") if p.name not in before and p.is_dir()
    )
    return new_dirs[-1] if new_dirs else pipeline_root


def _task_log(run_dir: Path, task: str) -> Path | None:
    """The failed task's own log (a task of a nested pipeline sits deeper in the run folder)."""
    logs = sorted(run_dir.rglob(f"{task}/{TASK_LOG}"), key=lambda path: path.stat().st_mtime)
    return logs[-1] if logs else None
