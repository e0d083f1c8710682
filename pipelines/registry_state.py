"""The registry's state as a cache key for the training pipeline's registry steps.

Register, score-champion, the quality gate and promote read or write the registry, so kfp.local
may reuse their results only while the registry is as they saw it: they take a key made from the
registry's state (``LocalModelRegistry.state_fingerprint``), and a new version or a new champion
makes them run again. A run's own writes change that state too, but running the same inputs again
on the state a run left changes nothing (the same bytes find their version; the champion they were
compared with is unchanged), so for the same inputs on that state the key is the one the run used.
An empty registry, or one that is not a folder, gets a key never seen before: a registry that was
wiped must be written again, and a remote one is not ours to fingerprint.

For the same reason, the same inputs on the state their last run left have that run's outcome:
the CLI reports it without starting the pipeline at all (``earlier_run``).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

STATES_FILE = "registry-states.json"


def inputs_key(pipeline_name: str, arguments: Mapping[str, Any]) -> str:
    """The identity of a run's inputs: pipeline, parameters, data and code fingerprints."""
    payload = json.dumps([pipeline_name, dict(arguments)], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class RegistryStates:
    """For each set of inputs, the key its last run used and the registry state it left."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, dict[str, Any]]:
        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    def key_for(self, inputs: str, state: str | None) -> str:
        """The cache key for a run of ``inputs`` on a registry now in ``state``."""
        if state is None:
            return uuid.uuid4().hex
        last = self._read().get(inputs)
        return last["key"] if last and last["left"] == state else state

    def earlier_run(self, inputs: str, state: str | None) -> dict[str, Any] | None:
        """The outcome of the last run of ``inputs``, if it left the registry in ``state``."""
        last = self._read().get(inputs)
        return last["outcome"] if state is not None and last and last["left"] == state else None

    def remember(self, inputs: str, key: str, left: str | None, outcome: Mapping[str, Any]) -> None:
        """Record that a run of ``inputs`` used ``key``, left the registry in ``left`` and ended
        with ``outcome`` (JSON values)."""
        states = self._read()
        if left is None:
            states.pop(inputs, None)
        else:
            states[inputs] = {"key": key, "left": left, "outcome": dict(outcome)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        partial.write_text(json.dumps(states, indent=2, sort_keys=True))
        partial.replace(self.path)
