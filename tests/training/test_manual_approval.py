"""``approval: manual``: the gate's winner waits as PendingManualApproval and people are told how
to approve it; ``flywheel approve``/``reject``/``registry show`` decide and show the audit trail.

The gate's promote step is called as its component calls it, with no pipeline run: the pipeline
wiring is unchanged, and the step's inputs are the workload and the registry."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
import yaml
from kfp import dsl

from flywheel.components.contract.workload import load_workload
from flywheel.components.errors import InvalidSpecError
from flywheel.components.gate import promote_model as promote_component
from flywheel.components.monitoring.notify import NotDeliveredError, NotifyTarget
from flywheel.components.registry import LocalModelRegistry
from flywheel.components.steps.gate import GATE, promote_model
from flywheel.pipelines.approval_cli import approval_summary
from flywheel.pipelines.cli import main

QSAR = load_workload("builtin:qsar")


@pytest.fixture
def webhook(chat_webhook):
    """The chat webhook as the workload's ``notify`` target; ``received`` holds what was posted."""
    url, received = chat_webhook
    return NotifyTarget(webhook_url=url), received


@pytest.fixture
def registry(tmp_path) -> LocalModelRegistry:
    """Version 1 the champion (rmse 0.9), version 2 a candidate that beats it (rmse 0.7)."""
    registry = LocalModelRegistry(tmp_path / "registry")
    for index, rmse in enumerate((0.9, 0.7)):
        archive = tmp_path / f"{index}.tar.gz"
        archive.write_bytes(f"model {index}".encode())
        registry.register(
            "qsar", str(archive), metrics={"rmse": rmse, "r2": 0.5}, hyperparameters={}, lineage={}
        )
    registry.promote("qsar", 1, "first champion", by=GATE)
    return registry


def _gate(registry: LocalModelRegistry, approval: str, target: NotifyTarget):
    return promote_model(
        registry_uri=registry.uri,
        model_name="qsar",
        version=2,
        compared_with=1,
        reason="beat version 1 on the same held-out rows",
        approval=approval,
        notify_target=target,
        champion_metrics={"rmse": 0.9, "r2": 0.5},
        objective_metric="rmse",
    )


def _workload_with(tmp_path: Path, **extra) -> Path:
    raw = yaml.safe_load(QSAR.path.read_text())
    raw["source_dir"] = str(QSAR.source_dir)
    path = tmp_path / "workload.yaml"
    path.write_text(yaml.safe_dump({**raw, **extra}))
    return path


def test_approval_and_notify_are_read_from_the_workload_and_checked_at_load(tmp_path):
    assert (QSAR.approval, QSAR.notify) == ("auto", NotifyTarget())
    manual = load_workload(
        _workload_with(tmp_path, approval="manual", notify={"webhook_url": "https://hooks.test/x"})
    )
    assert (manual.approval, manual.notify.webhook_url) == ("manual", "https://hooks.test/x")
    with pytest.raises(
        InvalidSpecError, match=r"^approval: 'sometimes' is not one of \['auto', 'manual'\]$"
    ):
        load_workload(_workload_with(tmp_path, approval="sometimes"))
    with pytest.raises(InvalidSpecError, match=r"notify\.webhook_url: 'ftp://x' is not an http"):
        load_workload(_workload_with(tmp_path, notify={"webhook_url": "ftp://x"}))


def test_manual_approval_leaves_the_winner_pending_and_tells_people_how_to_approve(
    registry, webhook, capsys
):
    target, received = webhook
    decision = _gate(registry, "manual", target)

    assert not decision.promote and "waiting for approval" in decision.reason
    assert registry.champion("qsar").version == 1
    assert registry.get("qsar", 2).approval == "PendingManualApproval"
    (message,) = received
    text = message["text"]
    assert text.startswith("*Flywheel: qsar version 2 needs approval*\n")
    assert "qsar version 2 beat the quality gate (champion version 1)" in text
    assert "- rmse (objective): 0.7000 vs 0.9000\n" in text
    assert "- r2: 0.5000 vs 0.5000\n" in text
    command = f"flywheel approve qsar 2 --registry {registry.uri} --note '...'"
    assert f"Approve (it becomes the champion): {command}\n" in text
    assert command in capsys.readouterr().out  # the step's log says it too

    assert (
        main(["approve", "qsar", "2", "--registry", registry.uri, "--note", "ok", "--by", "ana"])
        == 0
    )
    champion = registry.champion("qsar")
    assert (champion.version, champion.approval) == (2, "Approved")
    assert [(a["status"], a["by"], a["note"]) for a in champion.approvals] == [
        ("Approved", "ana", "ok")
    ]


def test_auto_approval_approves_and_promotes_the_winner_as_the_gate(registry, webhook):
    target, received = webhook
    assert _gate(registry, "auto", target).promote
    champion = registry.champion("qsar")
    assert (champion.version, champion.approvals[-1]["by"]) == (2, GATE)
    assert received == []


def test_the_gate_leaves_a_rejected_version_alone_and_tells_nobody(registry, webhook):
    target, received = webhook
    registry.set_approval("qsar", 2, "Rejected", by="ben", note="leaks labels")
    for approval in ("manual", "auto"):
        decision = _gate(registry, approval, target)
        assert (decision.promote, decision.reason) == (
            False,
            "version 2 was Rejected by ben; left as it is",
        )
    assert registry.champion("qsar").version == 1 and received == []


def test_reject_force_and_unknown_versions_on_the_command_line(registry, capsys):
    uri = registry.uri
    decide = ["--registry", uri, "--by", "cara"]

    assert main(["approve", "qsar", "7", "--note", "x", *decide]) == 1
    assert capsys.readouterr().err == (
        "flywheel: failed: model qsar has no version 7; versions: [1, 2]\n"
    )
    assert main(["reject", "qsar", "2", "--note", "overfits", *decide]) == 0
    assert "qsar version 2: Rejected by cara; champion: version 1" in capsys.readouterr().out
    assert main(["approve", "qsar", "2", "--note", "retry", *decide]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was Rejected by cara (overfits)" in err and "--force" in err
    assert [a["status"] for a in registry.get("qsar", 2).approvals] == ["Rejected"]

    assert main(["approve", "qsar", "2", "--note", "fixed", "--force", *decide]) == 0
    assert registry.champion("qsar").version == 2
    assert main(["reject", "qsar", "2", "--note", "drift", *decide]) == 0
    assert "champion: version 1" in capsys.readouterr().out


def test_registry_show_prints_stage_approval_and_the_audit_trail(registry, capsys):
    main(["reject", "qsar", "2", "--registry", registry.uri, "--by", "dan", "--note", "too slow"])
    capsys.readouterr()

    assert main(["registry", "show", "qsar", "--registry", registry.uri]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(
        "qsar version 1: champion, Approved; r2=0.5000, rmse=0.9000; registered "
    )
    assert lines[1].endswith(f" Approved by {GATE}: first champion")
    assert lines[2].startswith("qsar version 2: candidate, Rejected; r2=0.5000, rmse=0.7000")
    assert lines[3].endswith(" Rejected by dan: too slow")
    assert re.match(r"  \d{4}-\d\d-\d\dT\d\d:\d\d", lines[3])  # when, first

    assert main(["registry", "show", "qsar", "2", "--registry", registry.uri]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["registry", "show", "nope", "--registry", registry.uri]) == 1
    assert "model nope has no versions in" in capsys.readouterr().err


def test_a_runs_summary_says_the_approval_status_and_how_to_decide_when_pending(registry):
    assert approval_summary(registry.get("qsar", 1)) == "Approved"
    assert approval_summary(registry.get("qsar", 2)) == (
        "PendingManualApproval: decide with `flywheel approve qsar 2 --note ...` or "
        "`flywheel reject ...` (`flywheel registry show` for its trail)"
    )


def test_the_promote_component_reads_approval_and_notify_from_the_workload(
    registry, webhook, tmp_path
):
    target, received = webhook
    workload = _workload_with(
        tmp_path, name="qsar", approval="manual", notify={"webhook_url": target.webhook_url}
    )
    champion = dsl.Metrics(name="champion", uri=str(tmp_path / "champion"))
    champion.metadata.update({"version": 1, "model_sha256": "x", "rmse": 0.9, "r2": 0.5})

    promote_component.python_func(
        registry=registry.uri,
        model_name="",
        workload=str(workload),
        version=2,
        registry_state="",
        champion=champion,
    )

    assert registry.get("qsar", 2).stage == "candidate"
    (message,) = received
    assert "- rmse (objective): 0.7000 vs 0.9000" in message["text"]


def test_a_notification_nobody_takes_fails_the_step_in_one_line_and_leaves_the_version_pending(
    registry, capsys
):
    with socket.socket() as probe:  # a port that was just free: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    with pytest.raises(NotDeliveredError) as failed:
        _gate(registry, "manual", NotifyTarget(webhook_url=url))
    assert str(failed.value).startswith(f"notify: {url} was not reached: ")
    assert "Connection refused" in str(failed.value)
    assert len(str(failed.value).splitlines()) == 1
    assert registry.get("qsar", 2).approval == "PendingManualApproval"
    assert registry.champion("qsar").version == 1
