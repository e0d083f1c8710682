"""The event handler patches only what changed, or it would wake itself forever."""

from __future__ import annotations

from flywheel.operators.handlers import status_changes


def test_unchanged_status_patches_nothing() -> None:
    status = {"activeCount": 0, "counters": {"launched": 1}}
    assert status_changes(status, dict(status)) == {}


def test_a_null_the_api_server_already_dropped_is_not_patched_again() -> None:
    assert status_changes({"activeCount": 0}, {"activeCount": 0, "queued": None}) == {}


def test_changed_and_removed_fields_are_patched_but_observations_are_left_alone() -> None:
    old = {"activeCount": 1, "queued": {"trigger": "t"}, "observations": {"tick": "x"}}
    new = {"activeCount": 0}
    assert status_changes(old, new) == {"activeCount": 0, "queued": None}
