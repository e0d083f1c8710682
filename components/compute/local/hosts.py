"""Several hosts' processes at once, each a process group that is stopped as a whole.

A processing job of N instances runs here as N processes side by side. Each gets a process group
of its own, so everything a host starts (``bash`` -> ``python`` -> its workers) can be stopped
together when another host fails, as SageMaker stops a job's other containers; and when the host's
entrypoint exits, whatever it left running goes too, as it would with its container. Own groups do
not receive a signal sent to the step's group, so while hosts run, SIGTERM to the step stops them
first and then acts as before (kfp.local's ``TaskProcesses`` and a pod's termination both send it).
"""

from __future__ import annotations

import collections
import contextlib
import queue
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from flywheel.components.compute.backend import LogSink
from flywheel.components.compute.local.process import (
    TAIL_LINES,
    follow_lines,
    signal_group,
    start_process,
)

# How long a stopped host gets between SIGTERM and SIGKILL; shorter than kfp.local's own grace
# for a task, so the hosts are gone before the task's group is killed.
GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class HostCommand:
    """What one host runs: its name (for log lines), command, environment and working folder."""

    name: str
    command: Sequence[str]
    environment: Mapping[str, str]
    cwd: Path


class HostProcess:
    """One host's running command; its output lines go to ``log`` and the last ones are kept."""

    def __init__(self, host: HostCommand, log: LogSink) -> None:
        self.host = host
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.process = start_process(
            host.command, cwd=host.cwd, environment=host.environment, own_group=True
        )
        self._reader = threading.Thread(
            target=follow_lines, args=(self.process, self.tail, log), daemon=True
        )
        self._reader.start()

    def wait(self) -> int:
        """The entrypoint's exit status, once it and everything it started are gone."""
        status = self.process.wait()
        signal_group(self.process.pid, signal.SIGKILL)
        self._reader.join()
        return status

    def signal(self, signum: int) -> None:
        signal_group(self.process.pid, signum)


def stop(hosts: Sequence[HostProcess]) -> None:
    """SIGTERM to every host's group; SIGKILL to those still there after the grace."""
    for host in hosts:
        host.signal(signal.SIGTERM)
    for host in hosts:
        with contextlib.suppress(subprocess.TimeoutExpired):
            host.process.wait(GRACE_SECONDS)
        host.signal(signal.SIGKILL)


@contextlib.contextmanager
def stopped_with_step(hosts: list[HostProcess]) -> Iterator[None]:
    """While the block runs, SIGTERM stops ``hosts`` first, then does what it did before.

    Only the main thread can set a handler; elsewhere the caller's ``finally`` must stop them.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    restore = signal.SIG_DFL if previous is None else previous

    def on_sigterm(signum: int, _frame: object) -> None:
        stop(hosts)
        signal.signal(signal.SIGTERM, restore)
        signal.raise_signal(signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, restore)


@dataclass(frozen=True)
class HostOutcome:
    """How one host ended: its exit status, its last output lines, and whether it was stopped
    because another host had failed (then its status says nothing about its own script)."""

    host: HostCommand
    status: int
    tail: list[str]
    stopped: bool = False


def run_hosts(commands: Sequence[HostCommand], log: LogSink) -> list[HostOutcome]:
    """Run every host's command at once; the first to fail stops the others.

    Each output line reaches ``log`` as ``[<host name>] <line>``, whole, never interleaved.
    Returns the outcomes in the order the commands were given.
    """
    lock = threading.Lock()
    hosts: list[HostProcess] = []
    finished: queue.Queue[tuple[int, int]] = queue.Queue()
    statuses: dict[int, int] = {}
    stopped: set[int] = set()

    def host_log(name: str) -> LogSink:
        def write(line: str) -> None:
            with lock:
                log(f"[{name}] {line}")

        return write

    def wait(index: int) -> None:
        finished.put((index, hosts[index].wait()))

    try:
        with stopped_with_step(hosts):
            for index, command in enumerate(commands):
                hosts.append(HostProcess(command, host_log(command.name)))
                threading.Thread(target=wait, args=(index,), daemon=True).start()
            while len(statuses) < len(hosts):
                index, status = finished.get()
                statuses[index] = status
                if status != 0 and not stopped:
                    stopped.update(i for i in range(len(hosts)) if i not in statuses)
                    stop([hosts[i] for i in stopped])
    finally:
        stop([host for host in hosts if host.process.poll() is None])
    return [
        HostOutcome(host.host, statuses[index], list(host.tail), index in stopped)
        for index, host in enumerate(hosts)
    ]
