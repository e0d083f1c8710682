"""A warm Python interpreter that kfp.local's tasks fork from, instead of each starting cold.

A kfp.local task is ``sh -ec`` writing the component's source to a file and running
``python -m kfp.dsl.executor_main`` on it: a new interpreter that imports KFP's executor and
Flywheel's steps again, for every task and every tuning trial. This process imports what every
task needs once per run (``PRELOADED``, and MLflow's client when the run tracks) and, before it
forks a task, the Flywheel modules that task's component imports (``own_imports``), so that no
later task of the run imports them again. For each task ``forked_tasks`` hands it, it forks a
child that does what that command would have done, in the task's own session, folder,
environment and output pipe:

* it writes the source to a new temporary folder, as ``mktemp -d`` and ``printf`` do;
* it runs ``kfp.dsl.executor_main`` with the same arguments;
* it exits as the interpreter would: the traceback and status 1 on an error, ``SystemExit``'s code,
  ``atexit`` handlers and non-daemon threads first.

Each task comes as one connected socket passed over a control socket the run holds (no name on
the filesystem or in the network, so no other process can ask it to run anything). The
interpreter answers with the child's pid, then its exit status once reaped. It ignores SIGINT and
SIGTERM (whoever started it stops the tasks, each in its own process group) and ends when the
control socket closes, so it never outlives the run that started it.

Started as ``python -m flywheel.pipelines.warm_interpreter FD`` with the run's environment, so
that everything read at interpreter start (``PYTHONPATH``, ``sitecustomize``) is the tasks'.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import socket
import struct
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# What every task imports: KFP's executor, the step runtime and the workload's reader.
PRELOADED = (
    "kfp.dsl.executor_main",
    "flywheel.components.steps.runtime",
    "flywheel.components.contract.workload",
)
EXECUTOR_MODULE = PRELOADED[0]
# What ``components.tracking.record`` imports as it records: when the run tracks, every step that
# records would import MLflow's client (about 2 s).
TRACKING_MODULES = ("mlflow.tracking", "mlflow.entities")
# Modules of a component's own imports that are imported here before it forks: Flywheel's, known
# to start no thread as they load (a thread here would not survive into the forked tasks).
OWN_PACKAGE = "flywheel."
READY = b"R"  # on the control socket, once preloaded
# A request: a 4-byte length (sent with the task's output pipe attached), then that much JSON.
LENGTH = struct.Struct("!I")


def preload() -> None:
    """Import what every task needs, once, before any task forks."""
    from flywheel.components.tracking.uri import tracking_switched_off

    import_quietly((*PRELOADED, *(() if tracking_switched_off() else TRACKING_MODULES)))


def import_quietly(names: Iterable[str]) -> None:
    """Import each of ``names``; one that does not import (an optional extra not installed, an
    error as it loads) is left to the task that needs it, which fails as it would have cold."""
    for name in names:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    # What is loaded now stays as it is: the collector need not walk it in every child (and
    # thereby copy its pages), as it would not in a process that had imported it fresh.
    gc.freeze()


def own_imports(source: str) -> list[str]:
    """The Flywheel modules a component's source imports (its function body's ``import`` and
    ``from ... import`` statements): imported here once, so neither this task nor any later one
    of the run imports them again."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []  # the task reports it, as it would have cold
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return [name for name in names if name.startswith(OWN_PACKAGE)]


def receive_request(connection: socket.socket) -> tuple[dict[str, Any], int]:
    """One task's request, ``{"arguments", "environment", "cwd"}``, and its output pipe."""
    header, descriptors, _flags, _address = socket.recv_fds(connection, LENGTH.size, 1)
    if len(header) != LENGTH.size or len(descriptors) != 1:
        raise ConnectionError("a request without its length or its output pipe")
    (size,) = LENGTH.unpack(header)
    body = bytearray()
    while len(body) < size:
        chunk = connection.recv(size - len(body))
        if not chunk:
            raise ConnectionError("the request ended early")
        body += chunk
    return json.loads(body), descriptors[0]


def _become_task(output: int, environment: Mapping[str, str], cwd: str) -> None:
    """In the child: a session of its own, the task's output, folder and environment."""
    os.setsid()
    for handled in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(handled, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.set_wakeup_fd(-1)
    with open(os.devnull, "rb") as nothing:
        os.dup2(nothing.fileno(), 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(environment)
    tempfile.tempdir = None  # read TMPDIR again: the task's own
    sys.path[0] = cwd  # what ``python -m`` puts first
    reseed_inherited_generators()


def reseed_inherited_generators() -> None:
    """Seed numpy's global generator from the OS, as a fresh interpreter's import does, if it came
    loaded: forked tasks would otherwise all draw the same numbers. (Python's ``random`` reseeds
    itself in a forked child.)"""
    if "numpy.random" in sys.modules:
        sys.modules["numpy.random"].seed()


def _execute(arguments: Sequence[str]) -> int:
    """``sh -ec``'s script for a lightweight component, in this interpreter; the exit status."""
    source, *executor_arguments = arguments
    program_path = tempfile.mkdtemp()
    module_path = os.path.join(program_path, "ephemeral_component.py")
    with open(module_path, "w") as module:
        module.write(source)
    executor = sys.modules[EXECUTOR_MODULE]
    sys.argv = [executor.__file__, "--component_module_path", module_path, *executor_arguments]
    try:
        executor.executor_main()
    except SystemExit as stopped:
        return _exit_status(stopped.code)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _exit_status(code: object) -> int:
    """``SystemExit``'s code as the interpreter turns it into a status."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _finish(status: int) -> None:
    """End the child as the interpreter ends: threads joined, ``atexit`` run, output flushed."""
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


def run_task(request: Mapping[str, Any], output: int) -> None:
    """The forked child: become the task, run it, and never return."""
    status = 1
    try:
        _become_task(output, request["environment"], request["cwd"])
        status = _execute(request["arguments"])
    finally:
        _finish(status)


class WarmInterpreter:
    """Takes task connections on ``control`` and reports each forked child's pid and status."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.selector = selectors.DefaultSelector()
        self.waiting: dict[int, socket.socket] = {}  # child pid -> its task's connection
        self.wake_read, self.wake_write = socket.socketpair()
        for end in (self.wake_read, self.wake_write):
            end.setblocking(False)

    def serve(self) -> None:
        """Until the control socket closes: fork a child per task, report children that end."""
        for ignored in (signal.SIGINT, signal.SIGTERM):
            signal.signal(ignored, signal.SIG_IGN)
        signal.set_wakeup_fd(self.wake_write.fileno())
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
        self.selector.register(self.control, selectors.EVENT_READ, self._take_task)
        self.selector.register(self.wake_read, selectors.EVENT_READ, self._reap)
        self.control.sendall(READY)
        while self.selector.get_map():
            for key, _events in self.selector.select():
                key.data()

    def _take_task(self) -> None:
        """A byte on the control socket brings one task's connection; none means the run is over."""
        marker, descriptors, _flags, _address = socket.recv_fds(self.control, 1, 1)
        if not marker:
            self.selector.unregister(self.control)
            self.selector.unregister(self.wake_read)
            return
        if descriptors:
            self._start(socket.socket(fileno=descriptors[0]))

    def _start(self, connection: socket.socket) -> None:
        try:
            request, output = receive_request(connection)
        except (ConnectionError, OSError, ValueError):
            connection.close()
            return
        import_quietly(own_imports(request["arguments"][0]))
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:
            self._close_in_child(connection)
            run_task(request, output)
        os.close(output)
        self.waiting[pid] = connection
        connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")

    def _close_in_child(self, own: socket.socket) -> None:
        """The child keeps only its output pipe: not the control socket, nor other tasks'."""
        self.selector.close()
        for held in (self.control, self.wake_read, self.wake_write, *self.waiting.values(), own):
            held.close()

    def _reap(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self.wake_read.recv(4096):
                pass
        while self.waiting:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            connection = self.waiting.pop(pid, None)
            if connection is None:
                continue
            status = os.waitstatus_to_exitcode(wait_status)
            with contextlib.suppress(OSError):
                connection.sendall(json.dumps({"status": status}).encode() + b"\n")
            connection.close()


def main(control_descriptor: int) -> None:
    preload()
    WarmInterpreter(socket.socket(fileno=control_descriptor)).serve()


if __name__ == "__main__":
    main(int(sys.argv[1]))
