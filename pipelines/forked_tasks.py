"""Start kfp.local's lightweight-component tasks by forking a warm interpreter, not cold.

Every kfp.local task would start a new Python and import KFP's executor and Flywheel's steps:
about a quarter of a second before it does anything, paid again by every tuning trial. A
``flywheel run`` starts one ``warm_interpreter`` as it begins (a run started in-process gets its
own), which imports them once; each task that is KFP's own launch of a lightweight component is
handed to it and forked, with the task's environment, folder and output, in a session of its own.
Anything else (a component that installs packages, a task with environment variables of its own
or another ``PYTHON*`` environment, one named with another interpreter) starts as it always did.

Linux only: forking an interpreter that has loaded native libraries is not safe on macOS, where
Python itself stopped defaulting to it. ``FLYWHEEL_WARM_TASKS=off`` starts every task cold.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any

from flywheel.components.errors import InvalidSpecError
from flywheel.pipelines.warm_interpreter import LENGTH, READY

WARM_VARIABLE = "FLYWHEEL_WARM_TASKS"
# How long a task waits for the interpreter's imports before it starts cold instead: longer than
# they take on a busy 2-core machine (MLflow's client is most of it), so that the first tasks,
# which would import the same, wait for them rather than race them for the cores.
READY_SECONDS = 10.0
# KFP's launch of a lightweight component (``component_factory``), with the interpreter that
# kfp.local put in place of ``python3``; ``$0`` is the component's source and ``$@`` its arguments.
KFP_LAUNCH = re.compile(
    r"program_path=\$\(mktemp -d\)\n\n"
    r'printf "%s" "\$0" > "\$program_path/ephemeral_component\.py"\n'
    r"_KFP_RUNTIME=true (?P<python>\S+) -m kfp\.dsl\.executor_main\s+"
    r'--component_module_path\s+"\$program_path/ephemeral_component\.py"\s+"\$@"\s*'
)


# What the launch sets for the executor (and so for everything the task starts): kfp imports no
# client code in a task.
LAUNCH_VARIABLES = {"_KFP_RUNTIME": "true"}


def kfp_launch(full_command: Sequence[str]) -> tuple[str, list[str]] | None:
    """The interpreter and the script's arguments (source first) of KFP's lightweight launch."""
    if len(full_command) < 4 or list(full_command[:2]) != ["sh", "-ec"]:
        return None
    launch = KFP_LAUNCH.fullmatch(full_command[2])
    return (launch["python"], list(full_command[3:])) if launch else None


def _start_variables(environment: Mapping[str, str]) -> dict[str, str]:
    """What the interpreter reads as it starts (``PYTHONPATH`` and the like): a task whose values
    differ from the warm interpreter's would not import what it would have imported cold."""
    return {name: value for name, value in environment.items() if name.startswith("PYTHON")}


class _Messages:
    """JSON lines from the warm interpreter on one task's connection."""

    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection
        self._received = b""

    def next(self, timeout: float | None) -> dict[str, Any] | None:
        """The next message (``{}`` once the connection ends), or None if none came in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._received:
            left = None if deadline is None else max(deadline - time.monotonic(), 0)
            readable, _, _ = select.select([self.connection], [], [], left)
            if not readable:
                return None
            chunk = self.connection.recv(4096)
            if not chunk:
                return {}
            self._received += chunk
        line, self._received = self._received.split(b"\n", 1)
        return json.loads(line)


class ForkedTask:
    """A task the warm interpreter forked: the part of ``subprocess.Popen`` a task runner uses."""

    def __init__(self, messages: _Messages, pid: int, stdout: IO[str]) -> None:
        self.messages, self.pid, self.stdout = messages, pid, stdout
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self._status(timeout=0)

    def wait(self, timeout: float | None = None) -> int:
        status = self._status(timeout)
        if status is None:
            raise subprocess.TimeoutExpired(f"task {self.pid}", timeout or 0)
        return status

    def _status(self, timeout: float | None) -> int | None:
        if self.returncode is None:
            message = self.messages.next(timeout)
            if message is not None:
                # No status: the warm interpreter is gone, and with it the task's exit status.
                self.returncode = int(message.get("status", 1))
        return self.returncode

    def __enter__(self) -> ForkedTask:
        return self

    def __exit__(self, *_exception: object) -> None:
        self.stdout.close()
        self.wait()
        self.messages.connection.close()


class WarmInterpreterClient:
    """One run's warm interpreter: started at once, imported in the background, forked per task."""

    def __init__(self) -> None:
        self.python = sys.executable
        self.environment = {**os.environ, **LAUNCH_VARIABLES}
        self._control, theirs = socket.socketpair()
        # Its output is nobody's: a module it cannot import fails the task that needs it, cold.
        self.process = subprocess.Popen(
            [self.python, "-m", "flywheel.pipelines.warm_interpreter", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self.environment,
        )
        theirs.close()
        self._lock = threading.Lock()
        self._ready: bool | None = None  # None until first asked

    def start(
        self, full_command: Sequence[str], environment: Mapping[str, str]
    ) -> ForkedTask | None:
        """Fork ``full_command``'s task, or None where it must start cold (see the module)."""
        launch = kfp_launch(full_command)
        if launch is None or launch[0] != self.python or not self.ready(timeout=READY_SECONDS):
            return None
        if _start_variables(environment) != _start_variables(self.environment):
            return None
        ours, theirs = socket.socketpair()
        output, task_output = os.pipe()
        try:
            with self._lock:
                socket.send_fds(self._control, [b"T"], [theirs.fileno()])
            request = json.dumps(
                {
                    "arguments": launch[1],
                    "environment": {**environment, **LAUNCH_VARIABLES},
                    "cwd": os.getcwd(),
                }
            ).encode()
            socket.send_fds(ours, [LENGTH.pack(len(request))], [task_output])
            ours.sendall(request)
        except OSError:
            os.close(output)
            ours.close()
            return None
        finally:
            theirs.close()
            os.close(task_output)
        messages = _Messages(ours)
        started = messages.next(timeout=None) or {}
        if "pid" not in started:
            os.close(output)
            ours.close()
            return None
        stdout = open(output, errors="replace")  # noqa: SIM115 - the task's, closed with it
        return ForkedTask(messages, int(started["pid"]), stdout)

    def ready(self, timeout: float) -> bool:
        """Whether the interpreter has imported what it preloads, waiting up to ``timeout`` the
        first time; one that was not ready by then is not waited for again (tasks start cold)."""
        with self._lock:
            if self._ready is None:
                readable, _, _ = select.select([self._control], [], [], timeout)
                self._ready = bool(readable) and self._control.recv(1) == READY
            return self._ready

    def close(self) -> None:
        """End the interpreter now: every task it forked has ended, and it holds nothing to keep.

        (Closing the control socket alone would end it too, but only once it finished preloading;
        that is how it ends when this process dies first.)
        """
        self._control.close()
        self.process.kill()
        self.process.wait()


def warm_tasks_switched_on() -> bool:
    """``FLYWHEEL_WARM_TASKS``: ``on`` (the default, also when unset or empty) or ``off``;
    anything else is refused in one line before the command starts anything."""
    switch = os.environ.get(WARM_VARIABLE, "").strip().lower() or "on"
    if switch not in ("on", "off"):
        raise InvalidSpecError(
            WARM_VARIABLE, f"must be on or off, got {os.environ[WARM_VARIABLE]!r}"
        )
    return switch == "on"


_RUNNING: list[WarmInterpreterClient] = []  # this process's, while a block holds one


@contextlib.contextmanager
def warm_interpreter() -> Iterator[WarmInterpreterClient | None]:
    """This process's warm interpreter for the block: the one already running (the CLI starts one
    before its own imports, so that it is ready by the first task), else a new one, ended with the
    block; None where tasks start cold (switched off, or not Linux)."""
    if not warm_tasks_switched_on() or not sys.platform.startswith("linux"):
        yield None
        return
    if _RUNNING:
        yield _RUNNING[-1]
        return
    client = WarmInterpreterClient()
    _RUNNING.append(client)
    try:
        yield client
    finally:
        _RUNNING.remove(client)
        client.close()
