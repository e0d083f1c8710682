"""What a person sees while a pipeline runs locally, and what goes to the log instead."""

import io
import logging
import re
from pathlib import Path

import pytest
from kfp import dsl
from rich.console import Console

from flywheel.pipelines.local_runner import run_locally


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def shout(word: str) -> str:
    print(f"shouting {word}")
    return word.upper()


@dsl.pipeline(name="shouting")
def shouting(word: str = "flywheel") -> str:
    return shout(word=word).output


def test_progress_is_drawn_live_and_task_logs_go_to_the_log_file(tmp_path: Path) -> None:
    screen = io.StringIO()
    run = run_locally(
        shouting,
        {"word": "spin"},
        pipeline_root=tmp_path,
        console=Console(file=screen, force_terminal=True, width=100),
    )
    assert run.outputs["Output"] == "SPIN"
    assert run.tasks.started == ["shout"] and run.tasks.succeeded == ["shout"]
    drawn = screen.getvalue()
    assert "shout" in drawn and "1/1" in drawn
    assert "Executing task" not in drawn  # kfp.local's own logs stay out of the way
    log = run.log_file.read_text()
    assert "shouting spin" in log and "Executing task" in log


def test_off_a_terminal_each_task_that_ends_gets_one_plain_line(tmp_path: Path) -> None:
    screen = io.StringIO()
    for _ in range(2):  # the second run takes the task from kfp.local's cache
        run_locally(
            shouting,
            {"word": "pipe"},
            pipeline_root=tmp_path,
            console=Console(file=screen, force_terminal=False, width=100),
        )
    lines = screen.getvalue().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"shout: done in \d+\.\d s \(1/1\)", lines[0])
    assert lines[1] == "shout: from cache (1/1)"


def test_kfp_artifact_dumps_never_become_the_status_line(tmp_path: Path) -> None:
    screen = io.StringIO()
    run_locally(
        shouting,
        {"word": "quiet"},
        pipeline_root=tmp_path,
        console=Console(file=screen, force_terminal=True, width=100),
    )
    drawn = screen.getvalue()
    assert "shouting quiet" in drawn
    assert "Output:" not in drawn


def test_kfp_cache_hits_reach_the_progress_and_are_not_printed_as_log_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in a plain `flywheel` process: no logging handler yet, the root logger at WARNING.
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    monkeypatch.setattr(logging.getLogger(), "level", logging.WARNING)
    screen = io.StringIO()
    for _ in range(2):
        run_locally(
            shouting,
            {"word": "hush"},
            pipeline_root=tmp_path,
            console=Console(file=screen, force_terminal=False, width=100),
        )
    assert screen.getvalue().splitlines()[-1] == "shout: from cache (1/1)"
    assert "cache hit" not in capsys.readouterr().err
    assert logging.getLogger().level == logging.WARNING
