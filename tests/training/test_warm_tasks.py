"""kfp.local's tasks forked from a warm interpreter behave as the cold processes they replace.

Each test runs real lightweight components through ``TaskProcesses`` exactly as kfp.local hands
them over (``full_command`` with kfp.local's interpreter in place of ``python3``), once forked
from the run's warm interpreter and once started cold, and compares what the task saw.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kfp import dsl
from kfp.local.subprocess_task_handler import replace_python_executable

from flywheel.pipelines.forked_tasks import (
    WARM_VARIABLE,
    WarmInterpreterClient,
    kfp_launch,
    warm_interpreter,
)
from flywheel.pipelines.task_processes import TaskProcesses
from flywheel.pipelines.warm_interpreter import own_imports

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="tasks are forked on Linux only"
)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def observe(word: str):
    """What a task sees of its process and environment, as one JSON line."""
    import json
    import os
    import sys
    import tempfile

    print(
        "OBSERVED "
        + json.dumps(
            {
                "word": word,
                "pid": os.getpid(),
                "parent": os.getppid(),
                "group": os.getpgrp(),
                "session": os.getsid(0),
                "cwd": os.getcwd(),
                # What ``python -m`` put first, now behind the component's folder (KFP's loader).
                "path1": sys.path[1],
                "variable": os.environ.get("FLYWHEEL_TEST_VARIABLE"),
                "kfp_runtime": os.environ.get("_KFP_RUNTIME"),
                "kfp_client_imported": "kfp.client" in sys.modules,
                "tmpdir": tempfile.gettempdir(),
                "stdin": sys.stdin.read(),
                "module": sys.modules[observe.__module__].__file__,
            }
        ),
        flush=True,
    )


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def uses_the_gate():
    """Says whether the Flywheel module it imports was loaded before its import ran."""
    import sys

    loaded = "flywheel.components.steps.gate" in sys.modules
    from flywheel.components.steps.gate import decide_promotion  # noqa: F401

    print(f"LOADED {loaded}", flush=True)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def end_as(how: str):
    """Ends in the way ``how`` names, with an ``atexit`` handler and a late thread to flush."""
    import atexit
    import sys
    import threading
    import time

    atexit.register(lambda: print("atexit ran", flush=True))

    def late() -> None:
        time.sleep(0.3)
        print("thread finished", flush=True)

    threading.Thread(target=late).start()
    if how == "raise":
        raise ValueError("the task's own error")
    if how == "exit":
        sys.exit(3)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def sleep_long(marker: str):
    import os
    import pathlib
    import time

    pathlib.Path(marker).write_text(str(os.getpid()))
    time.sleep(120)


@dsl.component(base_image="python:3.11", install_kfp_package=False, packages_to_install=["six"])
def installs_packages():
    pass


def command_for(component: Any, folder: Path, **parameters: Any) -> list[str]:
    """kfp.local's ``full_command`` for ``component`` with ``parameters``."""
    container = component.component_spec.implementation.container
    executor_input = json.dumps(
        {
            "inputs": {"parameterValues": parameters},
            "outputs": {"outputFile": str(folder / "executor_output.json")},
        }
    )
    arguments = [argument.replace("{{$}}", executor_input) for argument in container.args]
    return replace_python_executable([*container.command, *arguments], sys.executable)


@pytest.fixture(scope="module")
def warm() -> Iterator[WarmInterpreterClient]:
    with warm_interpreter() as client:
        assert client is not None and client.ready(timeout=60)
        yield client


@pytest.fixture
def run_task(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str]]:
    def run(
        tasks: TaskProcesses, component: Any, env_vars: dict[str, str] | None = None, **parameters
    ) -> tuple[int, str]:
        folder = tmp_path / f"task-{time.monotonic_ns()}"
        folder.mkdir()
        capfd.readouterr()
        status = tasks.run(command_for(component, folder, **parameters), env_vars)
        return status, capfd.readouterr().out

    return run


def observed(output: str) -> dict[str, Any]:
    line = next(line for line in output.splitlines() if line.startswith("OBSERVED "))
    return json.loads(line.removeprefix("OBSERVED "))


def test_kfp_lightweight_launch_is_recognised_and_any_other_command_is_not(
    tmp_path: Path,
) -> None:
    python, arguments = kfp_launch(command_for(observe, tmp_path, word="x"))
    assert python == sys.executable
    assert (
        arguments[0].lstrip().startswith("import kfp")
    )  # the component's source, then its arguments
    assert arguments[1] == "--executor_input" and json.loads(arguments[2])["inputs"] == {
        "parameterValues": {"word": "x"}
    }
    assert arguments[3:] == ["--function_to_execute", "observe"]
    assert kfp_launch(command_for(installs_packages, tmp_path)) is None  # pip first: cold
    assert kfp_launch(["sh", "-ec", "echo hello", "x"]) is None


def test_a_forked_task_sees_what_a_cold_one_sees_in_a_session_of_its_own(
    warm: WarmInterpreterClient,
    run_task: Callable[..., tuple[int, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLYWHEEL_TEST_VARIABLE", "set after the interpreter started")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    status_warm, output_warm = run_task(TaskProcesses(scratch, warm), observe, word="hello")
    status_cold, output_cold = run_task(TaskProcesses(scratch), observe, word="hello")
    forked, cold = observed(output_warm), observed(output_cold)

    assert status_warm == status_cold == 0
    assert forked["parent"] == warm.process.pid  # really forked, not started cold
    assert forked["group"] == forked["session"] == forked["pid"]
    assert cold["group"] == cold["session"] != cold["pid"]  # sh leads, python beneath it
    for seen in ("word", "cwd", "path1", "variable", "kfp_runtime", "tmpdir", "stdin"):
        assert forked[seen] == cold[seen], seen
    assert forked["kfp_runtime"] == "true"  # as the launch sets it, for all the task starts
    assert not forked["kfp_client_imported"] and not cold["kfp_client_imported"]
    assert forked["variable"] == "set after the interpreter started"
    assert forked["tmpdir"] == str(scratch)
    # The source goes to a folder of its own under the task's TMPDIR, as ``mktemp -d`` puts it.
    assert Path(forked["module"]).parent.parent == scratch
    assert Path(forked["module"]).read_text() == Path(cold["module"]).read_text()


@pytest.mark.parametrize(
    ("how", "status", "printed"),
    [("return", 0, None), ("raise", 1, "ValueError: the task's own error"), ("exit", 3, None)],
)
def test_a_forked_task_ends_as_the_interpreter_would(
    warm: WarmInterpreterClient,
    run_task: Callable[..., tuple[int, str]],
    tmp_path: Path,
    how: str,
    status: int,
    printed: str | None,
) -> None:
    for tasks in (TaskProcesses(tmp_path, warm), TaskProcesses(tmp_path)):
        ended, output = run_task(tasks, end_as, how=how)
        assert ended == status
        # Non-daemon threads are joined before ``atexit`` handlers run, as at interpreter exit.
        assert output.index("thread finished") < output.index("atexit ran")
        if printed:
            assert printed in output


def test_forked_children_do_not_share_numpys_unseeded_draws() -> None:
    # numpy.random loaded before the fork, as a preloaded module could load it: without the
    # reseed two children draw the same number; with it, as fresh interpreters, they do not.
    script = textwrap.dedent(
        """
        import os
        import numpy.random
        from flywheel.pipelines.warm_interpreter import reseed_inherited_generators

        def draw_in_child(reseed):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                if reseed:
                    reseed_inherited_generators()
                os.write(write, repr(numpy.random.random()).encode())
                os._exit(0)
            os.close(write)
            os.waitpid(pid, 0)
            return os.read(read, 64)

        print(draw_in_child(False) == draw_in_child(False), draw_in_child(True) == draw_in_child(True))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.split() == ["True", "False"], result.stderr


def test_tasks_start_cold_with_variables_of_their_own_or_another_python_path(
    warm: WarmInterpreterClient,
    run_task: Callable[..., tuple[int, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tasks = TaskProcesses(tmp_path, warm)
    _, output = run_task(tasks, observe, {"FLYWHEEL_TEST_VARIABLE": "own"}, word="x")
    assert observed(output)["variable"] == "own"
    assert observed(output)["parent"] != warm.process.pid

    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}")
    _, output = run_task(tasks, observe, word="x")
    assert observed(output)["parent"] != warm.process.pid


def test_warm_tasks_switched_off_start_every_task_cold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WARM_VARIABLE, "off")
    with warm_interpreter() as client:
        assert client is None


def test_stopping_ends_a_forked_task_and_everything_it_started(
    warm: WarmInterpreterClient, tmp_path: Path
) -> None:
    tasks = TaskProcesses(tmp_path, warm)
    marker = tmp_path / "pid"
    ended: list[int] = []
    runner = threading.Thread(
        target=lambda: ended.append(
            tasks.run(command_for(sleep_long, tmp_path, marker=str(marker)))
        )
    )
    runner.start()
    deadline = time.monotonic() + 30
    while not marker.is_file():
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)
    tasks.stop()
    runner.join(timeout=15)
    assert ended == [-signal.SIGTERM]
    with pytest.raises(ProcessLookupError):
        os.kill(int(marker.read_text()), 0)


def test_the_warm_interpreter_ends_with_the_process_that_started_it(tmp_path: Path) -> None:
    starter = textwrap.dedent(
        """
        import os, signal
        from flywheel.pipelines.forked_tasks import WarmInterpreterClient
        client = WarmInterpreterClient()
        client.ready(timeout=60)
        print(client.process.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", starter], capture_output=True, text=True, timeout=90
    )
    assert result.returncode == -signal.SIGKILL
    interpreter = int(result.stdout.split()[0])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{interpreter}").exists() and _state(interpreter) != "Z":
        assert time.monotonic() < deadline, "the warm interpreter outlived its run"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_an_interpreter_not_ready_in_time_is_not_waited_for_again(
    run_task: Callable[..., tuple[int, str]], tmp_path: Path
) -> None:
    client = WarmInterpreterClient()
    try:
        assert not client.ready(timeout=0)  # its imports take longer than no time at all
        time.sleep(0.5)
        asked = time.monotonic()
        assert not client.ready(timeout=60)  # the first answer stands, at once
        assert time.monotonic() - asked < 1
        _, output = run_task(TaskProcesses(tmp_path, client), observe, word="x")
        assert observed(output)["parent"] != client.process.pid  # started cold
    finally:
        client.close()
    assert client.process.poll() is not None


def test_a_forked_task_finds_the_flywheel_modules_its_component_imports_already_loaded(
    warm: WarmInterpreterClient, run_task: Callable[..., tuple[int, str]], tmp_path: Path
) -> None:
    _, forked = run_task(TaskProcesses(tmp_path, warm), uses_the_gate)
    _, cold = run_task(TaskProcesses(tmp_path), uses_the_gate)
    assert "LOADED True" in forked  # imported once, by the interpreter, before it forked
    assert "LOADED False" in cold


def test_own_imports_are_the_flywheel_modules_a_component_imports_and_nothing_else() -> None:
    source = textwrap.dedent(
        """
        import json
        from kfp import dsl
        def step():
            import flywheel.components.errors
            from flywheel.components.steps.gate import decide_promotion
            from . import nearby
            import numpy
        """
    )
    assert own_imports(source) == ["flywheel.components.errors", "flywheel.components.steps.gate"]
    assert own_imports("def broken(:") == []


def test_a_warm_tasks_switch_that_is_neither_on_nor_off_is_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flywheel.pipelines.cli import EXIT_BAD_INPUT, main

    monkeypatch.setenv(WARM_VARIABLE, "of")
    home = tmp_path / "home"
    assert main(["--home", str(home), "run", "training"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip().splitlines() == [
        "flywheel: error: FLYWHEEL_WARM_TASKS: must be on or off, got 'of'"
    ]
    assert not home.exists()  # nothing written, no task started
