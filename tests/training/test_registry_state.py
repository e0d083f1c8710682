"""The registry steps' cache key: reused only while the registry is as the last run of the same
inputs left it; a change by anyone else, or a wiped registry, runs them again."""

from __future__ import annotations

from pathlib import Path

from flywheel.components.registry import LocalModelRegistry
from flywheel.pipelines.registry_state import RegistryStates, inputs_key


def test_the_same_inputs_on_the_state_their_run_left_reuse_that_runs_key(tmp_path: Path) -> None:
    states = RegistryStates(tmp_path / "states.json")
    inputs = inputs_key("training", {"seed": 7})
    first = states.key_for(inputs, "state-before")
    assert first == "state-before"
    states.remember(inputs, first, "state-after", {"version": 1})
    assert states.key_for(inputs, "state-after") == first
    assert states.earlier_run(inputs, "state-after") == {"version": 1}


def test_a_state_changed_since_or_other_inputs_get_the_current_state(tmp_path: Path) -> None:
    states = RegistryStates(tmp_path / "states.json")
    inputs = inputs_key("training", {"seed": 7})
    states.remember(inputs, "state-before", "state-after", {"version": 1})
    assert states.key_for(inputs, "someone-else-promoted") == "someone-else-promoted"
    assert states.earlier_run(inputs, "someone-else-promoted") is None
    other = inputs_key("training", {"seed": 8})
    assert states.key_for(other, "state-after") == "state-after"
    assert states.earlier_run(other, "state-after") is None


def test_an_empty_registry_never_reuses_a_key(tmp_path: Path) -> None:
    states = RegistryStates(tmp_path / "states.json")
    inputs = inputs_key("training", {"seed": 7})
    first = states.key_for(inputs, None)
    states.remember(inputs, first, None, {"version": 1})  # wiped again after the run
    assert states.key_for(inputs, None) != first
    assert states.earlier_run(inputs, None) is None


def test_the_fingerprint_follows_new_versions_and_the_champion(tmp_path: Path) -> None:
    registry = LocalModelRegistry(tmp_path)
    assert registry.state_fingerprint("qsar") is None
    seen = set()
    for content in ("a", "b"):
        archive = tmp_path / f"{content}.tar.gz"
        archive.write_bytes(content.encode())
        registry.register("qsar", str(archive), metrics={}, hyperparameters={}, lineage={})
        seen.add(registry.state_fingerprint("qsar"))
    registry.promote("qsar", 1)
    seen.add(registry.state_fingerprint("qsar"))
    assert len(seen) == 3
    assert registry.state_fingerprint("qsar") == LocalModelRegistry(tmp_path).state_fingerprint(
        "qsar"
    )
