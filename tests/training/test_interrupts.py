"""Ctrl-C and SIGTERM sent to the ``flywheel`` process alone end the whole run, as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flywheel.components.registry import LocalModelRegistry

# Writes who it is, then trains "forever": the run is interrupted while this script is running.
SLOW_SCRIPT = """\
import json, os, time
from pathlib import Path
Path(os.environ["MARKER"]).write_text(json.dumps({"pid": os.getpid(), "group": os.getpgrp()}))
print("loss=1.0", flush=True)
time.sleep(120)
"""


def _processes_in_group(group: int) -> list[int]:
    """Live (not zombie) processes whose process group is ``group``, read from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, process_group = fields[0], int(fields[2])
        if process_group == group and state != "Z":
            members.append(int(stat.parent.name))
    return members


def _wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.is_file():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the training script never started"
        time.sleep(0.1)


# The same, but deaf to SIGTERM: only the SIGKILL after the grace period ends it.
STUBBORN_SCRIPT = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + SLOW_SCRIPT


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads processes from /proc")
@pytest.mark.parametrize(
    ("signum", "status", "script"),
    [
        (signal.SIGINT, 130, SLOW_SCRIPT),
        (signal.SIGTERM, 143, SLOW_SCRIPT),
        (signal.SIGTERM, 143, STUBBORN_SCRIPT),
    ],
    ids=["ctrl-c", "sigterm", "sigterm-ignored-by-the-script"],
)
def test_a_signal_to_the_cli_ends_every_process_and_leaves_no_temporary_files(
    tmp_path: Path, make_workload, signum: int, status: int, script: str
) -> None:
    workload = make_workload(script)
    table = tmp_path / "table.csv"
    table.write_text("id,x,y\n" + "".join(f"{i},{i},{2 * i + 1}\n" for i in range(200)))
    marker, scratch = tmp_path / "script.json", tmp_path / "tmp"
    scratch.mkdir()
    registry = tmp_path / "home" / "registry"
    command = ["run", "training", "--workload", str(workload), "--source", str(table)]
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flywheel.pipelines.cli",
            "--home",
            str(tmp_path / "home"),
            *command,
        ],
        env={**os.environ, "MARKER": str(marker), "TMPDIR": str(scratch)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(marker, cli)
    script = json.loads(marker.read_text())
    assert script["group"] != os.getpgrp()  # the task runs in a session of its own

    started = time.monotonic()
    cli.send_signal(signum)
    _, error = cli.communicate(timeout=30)

    assert cli.returncode == status
    assert error.strip().splitlines() == [
        f"flywheel: interrupted by {signal.Signals(signum).name}: "
        "the run and its processes are stopped"
    ]
    assert time.monotonic() - started < 15
    assert _processes_in_group(script["group"]) == []
    assert not list(scratch.iterdir())  # no events file, no task scratch folders
    assert LocalModelRegistry(registry).versions("toy-model") == []


def test_an_interrupted_command_finishes_a_promotion_its_step_left_half_done(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    from flywheel.pipelines import cli
    from flywheel.pipelines.interrupts import Interrupted

    registry = LocalModelRegistry(tmp_path / "registry")
    for content in (b"a", b"b"):
        archive = tmp_path / f"{content.decode()}.tar.gz"
        archive.write_bytes(content)
        registry.register("toy-model", str(archive), metrics={}, hyperparameters={}, lineage={})
    registry.promote("toy-model", 1, "first")
    entry = {"version": 2, "previous": 1, "promoted_at": "2026-01-01T00:00:00+00:00", "reason": ""}
    # The promote step was killed right after its commit point.
    (tmp_path / "registry/toy-model/champion.json").write_text(json.dumps(entry))

    def interrupted(*_args) -> int:
        raise Interrupted(signal.SIGTERM)

    monkeypatch.setattr(cli, "_run_training", interrupted)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    status = cli.main(["run", "training", "--registry", str(tmp_path / "registry")])
    assert status == 143
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert "interrupted by SIGTERM" in capsys.readouterr().err
    stages = [
        json.loads((tmp_path / f"registry/toy-model/versions/{n}/version.json").read_text())[
            "stage"
        ]
        for n in (1, 2)
    ]
    assert stages == ["archived", "champion"]
    assert registry.champion_history("toy-model")[-1] == entry
