"""kfp.local's task processes, each in a session of its own, so that stopping a run ends them all.

kfp.local starts a task as ``sh -c ... python -m kfp.dsl.executor_main`` in the CLI's own process
group, and a task's step starts the training script or the scoring server beneath it. A signal
sent to the CLI alone would orphan the lot. Here each task starts a new session, so its whole tree
is one process group to signal; it gets a private temporary folder, removed with the run; and its
output is also kept in ``task.log`` beside the task's artifacts, the log a failure points at.
Where it can be, a task is forked from the run's warm interpreter instead of started cold
(``forked_tasks``): the same session, folder, environment and output, without the start-up.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from kfp.local import subprocess_task_handler

from flywheel.components.compute.local.process import signal_group, start_process
from flywheel.pipelines.forked_tasks import ForkedTask, WarmInterpreterClient, warm_interpreter
from flywheel.pipelines.interrupts import stopping

# How long a task's processes get to exit on SIGTERM before they are killed.
GRACE_SECONDS = 5.0
TASK_LOG = "task.log"


def task_folder(command: Sequence[str]) -> Path | None:
    """The task's output folder, read from the executor input kfp.local passes on the command."""
    for previous, argument in itertools.pairwise(command):
        if previous == "--executor_input":
            output_file = json.loads(argument).get("outputs", {}).get("outputFile")
            return Path(output_file).parent if output_file else None
    return None


class TaskProcesses:
    """Starts kfp.local's tasks in their own sessions and can stop every one still running."""

    def __init__(self, scratch: Path, warm: WarmInterpreterClient | None = None) -> None:
        self.scratch = scratch
        self.warm = warm
        self._running: dict[int, subprocess.Popen[str] | ForkedTask] = {}
        # Re-entrant: the CLI's signal handler calls ``stop`` on the thread that may hold it.
        self._lock = threading.RLock()
        self._stopping = threading.Event()

    def run(self, full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        """kfp.local's ``run_local_subprocess``, with a session, a temporary folder and a log."""
        if self._stopping.is_set():
            return 1  # a stopped run starts nothing more (kfp.local may still drain a ParallelFor)
        folder = task_folder(full_command)
        log_path = folder / TASK_LOG if folder else None
        if log_path:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        environment = {**os.environ, **(env_vars or {}), "TMPDIR": str(self.scratch)}
        with (
            self._start(full_command, environment, own_variables=bool(env_vars)) as process,
            log_path.open("w") if log_path else contextlib.nullcontext() as log,
        ):
            with self._lock:
                self._running[process.pid] = process
            if self._stopping.is_set():  # stopped while this task was starting
                signal_group(process.pid, signal.SIGTERM)
            try:
                assert process.stdout is not None
                for line in process.stdout:
                    print(line, end="")
                    if log:
                        log.write(line)
                print("\n")
                return process.wait()
            finally:
                with self._lock:
                    self._running.pop(process.pid, None)
                self._end(process)

    def _start(
        self, full_command: list[str], environment: dict[str, str], own_variables: bool
    ) -> subprocess.Popen[str] | ForkedTask:
        """Forked from the warm interpreter where it can be; else a new process, as kfp.local's.

        A task with environment variables of its own starts cold: libraries the warm interpreter
        preloaded read some variables (thread counts, say) only as they are imported.
        """
        forked = None
        if self.warm is not None and not own_variables:
            forked = self.warm.start(full_command, environment)
        return forked or start_process(full_command, environment=environment, own_group=True)

    def stop(self) -> None:
        """Send SIGTERM to every running task's process group; SIGKILL follows after the grace."""
        self._stopping.set()
        with self._lock:
            groups = list(self._running)
        for group in groups:
            signal_group(group, signal.SIGTERM)

    def _end(self, process: subprocess.Popen[str] | ForkedTask) -> None:
        """Leave nothing of a stopped task running: its leader gets the grace, then the group dies."""
        if process.poll() is None:
            signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(GRACE_SECONDS)
        if self._stopping.is_set():
            # What the task started may outlive its leader; the group still names it.
            signal_group(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def task_processes() -> Iterator[TaskProcesses]:
    """Route kfp.local's task processes through a ``TaskProcesses`` for the length of a run.

    A signal stops them (``interrupts.stopping``); their temporary folder goes with the run.
    """
    scratch = Path(tempfile.mkdtemp(prefix="flywheel-run-"))
    original = subprocess_task_handler.run_local_subprocess
    try:
        with warm_interpreter() as warm:
            tasks = TaskProcesses(scratch, warm)
            subprocess_task_handler.run_local_subprocess = tasks.run
            with stopping(tasks.stop):
                yield tasks
    finally:
        subprocess_task_handler.run_local_subprocess = original
        shutil.rmtree(scratch, ignore_errors=True)
