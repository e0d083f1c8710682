"""What a person sees while a pipeline runs locally, and what goes to the log instead."""

import io
from pathlib import Path

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
