"""Approval in the local registry: SageMaker's states, an audit trail, and the champion as the
newest Approved version, written atomically like every other registry write."""

import json
from pathlib import Path

import pytest

from flywheel.components.errors import InvalidSpecError, RegistryError
from flywheel.components.registry import LocalModelRegistry, ModelVersion


def _registry_with(tmp_path: Path, count: int) -> LocalModelRegistry:
    registry = LocalModelRegistry(tmp_path / "registry")
    for index in range(count):
        archive = tmp_path / f"model-{index}.tar.gz"
        archive.write_bytes(f"model {index}".encode())
        registry.register(
            "qsar", str(archive), metrics={"rmse": 1.0 - index / 10}, hyperparameters={}, lineage={}
        )
    return registry


def _states(registry: LocalModelRegistry) -> list[tuple[str, str]]:
    return [(v.stage, v.approval) for v in registry.versions("qsar")]


def test_versions_are_registered_pending_manual_approval_with_an_empty_trail(tmp_path):
    registry = _registry_with(tmp_path, 1)
    version = registry.get("qsar", 1)
    assert (version.approval, list(version.approvals)) == ("PendingManualApproval", [])


def test_approving_records_who_when_and_why_and_makes_the_newest_approved_champion(tmp_path):
    registry = _registry_with(tmp_path, 2)
    registry.set_approval("qsar", 1, "Approved", by="alice", note="looks good")
    assert registry.champion("qsar").version == 1
    approved = registry.set_approval("qsar", 2, "Approved", by="bob", note="better rmse")

    assert approved.stage == "champion"
    assert _states(registry) == [("archived", "Approved"), ("champion", "Approved")]
    (entry,) = approved.approvals
    assert (entry["status"], entry["by"], entry["note"]) == ("Approved", "bob", "better rmse")
    assert entry["at"].startswith("20")
    # The decision is in the version's own record on disk, not only in what readers overlay.
    on_disk = json.loads((tmp_path / "registry/qsar/versions/2/version.json").read_text())
    assert on_disk["approval"] == "Approved" and on_disk["approvals"] == [entry]


def test_rejecting_the_champion_hands_the_title_to_the_newest_version_still_approved(tmp_path):
    registry = _registry_with(tmp_path, 3)
    registry.promote("qsar", 1, "first", by="gate")
    registry.promote("qsar", 2, "beat 1", by="gate")

    registry.set_approval("qsar", 2, "Rejected", by="carol", note="drifted in prod")
    assert registry.champion("qsar").version == 1
    assert _states(registry) == [
        ("champion", "Approved"),
        ("archived", "Rejected"),
        ("candidate", "PendingManualApproval"),
    ]
    registry.set_approval("qsar", 1, "Rejected", by="carol", note="also bad")
    assert registry.champion("qsar") is None
    history = registry.champion_history("qsar")
    assert [(h["version"], h["previous"], h["by"]) for h in history][-2:] == [
        (1, 2, "carol"),
        (None, 1, "carol"),
    ]


def test_promoting_an_older_version_rejects_the_newer_approved_ones_saying_why(tmp_path):
    registry = _registry_with(tmp_path, 3)
    for number in (1, 2, 3):
        registry.promote("qsar", number, f"won round {number}", by="gate")

    registry.promote("qsar", 1, "3 and 2 misbehave", by="dave")

    assert registry.champion("qsar").version == 1
    assert _states(registry) == [
        ("champion", "Approved"),
        ("archived", "Rejected"),
        ("archived", "Rejected"),
    ]
    last = registry.get("qsar", 3).approvals[-1]
    assert (last["status"], last["by"]) == ("Rejected", "dave")
    assert last["note"] == "rolled back to version 1: 3 and 2 misbehave"
    assert [a["status"] for a in registry.get("qsar", 1).approvals] == ["Approved", "Approved"]


def test_approving_a_rejected_version_needs_force(tmp_path):
    registry = _registry_with(tmp_path, 1)
    registry.set_approval("qsar", 1, "Rejected", by="erin", note="leaks labels")
    before = (tmp_path / "registry/qsar/versions/1/version.json").read_text()

    with pytest.raises(RegistryError, match=r"was Rejected by erin \(leaks labels\); .*force"):
        registry.set_approval("qsar", 1, "Approved", by="frank")
    with pytest.raises(RegistryError, match="was Rejected"):
        registry.promote("qsar", 1, "gate", by="gate")
    assert (tmp_path / "registry/qsar/versions/1/version.json").read_text() == before

    forced = registry.set_approval("qsar", 1, "Approved", by="frank", note="fixed", force=True)
    assert (forced.stage, forced.approval) == ("champion", "Approved")
    assert [a["status"] for a in forced.approvals] == ["Rejected", "Approved"]


def test_unknown_versions_and_statuses_are_refused_in_one_line_with_nothing_written(tmp_path):
    registry = _registry_with(tmp_path, 1)
    folder = tmp_path / "registry/qsar"
    before = sorted((p, p.read_bytes()) for p in folder.rglob("*") if p.is_file())

    with pytest.raises(RegistryError, match=r"has no version 7; versions: \[1\]"):
        registry.set_approval("qsar", 7, "Approved", by="x")
    with pytest.raises(RegistryError, match="has no version 7"):
        registry.promote("qsar", 7)
    with pytest.raises(InvalidSpecError, match="status: 'Approve' is not an approval status"):
        registry.set_approval("qsar", 1, "Approve", by="x")
    assert sorted((p, p.read_bytes()) for p in folder.rglob("*") if p.is_file()) == before


def test_a_rejection_killed_after_its_commit_reads_whole_and_is_finished_by_recover(tmp_path):
    registry = _registry_with(tmp_path, 2)
    registry.promote("qsar", 1, "first", by="gate")
    registry.promote("qsar", 2, "second", by="gate")
    # Killed right after the commit point: champion.json carries the rejection of version 2, and
    # version 2's own record does not have it yet.
    decision = {
        "status": "Rejected",
        "by": "gina",
        "at": "2026-12-06T10:00:00.000000+00:00",
        "note": "n",
    }
    entry = {
        "version": 1,
        "previous": 2,
        "promoted_at": "2026-12-06T10:00:00+00:00",
        "reason": "version 2 Rejected: n",
        "by": "gina",
        "approvals": {"2": decision},
    }
    (tmp_path / "registry/qsar/champion.json").write_text(json.dumps(entry))

    assert registry.get("qsar", 2).approvals[-1] == decision
    assert _states(registry) == [("champion", "Approved"), ("archived", "Rejected")]
    registry.recover("qsar")
    on_disk = json.loads((tmp_path / "registry/qsar/versions/2/version.json").read_text())
    assert (on_disk["approval"], on_disk["approvals"][-1]) == ("Rejected", decision)
    registry.recover("qsar")  # applied once, however often recovered
    assert registry.get("qsar", 2).approvals.count(decision) == 1


def test_version_files_written_before_approvals_read_as_the_gate_left_them():
    old = {"name": "qsar", "version": 1, "model_uri": "m", "model_sha256": "s", "stage": "archived"}
    assert ModelVersion.from_dict(old).approval == "Approved"
    assert ModelVersion.from_dict({**old, "stage": "champion"}).approval == "Approved"
    pending = ModelVersion.from_dict({**old, "stage": "candidate"})
    assert (pending.approval, list(pending.approvals)) == ("PendingManualApproval", [])


def test_a_decision_changes_the_state_the_registry_steps_are_cached_by(tmp_path):
    registry = _registry_with(tmp_path, 2)
    before = registry.state_fingerprint("qsar")
    registry.set_approval("qsar", 1, "Rejected", by="hal", note="n")
    assert registry.champion("qsar") is None  # the champion did not move: only the approval
    assert registry.state_fingerprint("qsar") != before
