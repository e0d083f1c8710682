"""What a local run did, importable without KFP: the CLI reports an earlier run without loading it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TaskLog:
    """What happened to each task during one run, read from kfp.local's log records."""

    started: list[str] = field(default_factory=list)
    succeeded: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LocalRun:
    outputs: Mapping[str, Any]
    run_dir: Path
    log_file: Path
    tasks: TaskLog
    # True when nothing was started: the earlier run of the same inputs left the registry as it
    # is, so its outputs are this run's (``pipelines.registry_state``).
    reused: bool = False
