"""CLI commands for decisions on model versions: ``approve``, ``reject`` and ``registry show``.

``approve`` makes the version the champion (an approved gate winner is what the champion is); on
a rolled-back-to older version, the Approved versions newer than it are rejected, saying why.
Who decided is ``--by``, else the OS user (a local registry) or the AWS caller identity (SageMaker).
Refusals (an unknown version, a Rejected version without ``--force``) are one line, before any
write.
"""

from __future__ import annotations

import argparse
import getpass
from typing import TYPE_CHECKING

from flywheel.pipelines.defaults import Home

if TYPE_CHECKING:
    from rich.console import Console

    from flywheel.components.registry import ModelRegistry, ModelVersion


def _registry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry", default=None, help="model registry folder or URI (default: HOME/registry)"
    )


def add_approval_commands(commands: argparse._SubParsersAction, parser_class: type) -> None:
    """``approve``, ``reject`` and ``registry show`` under the flywheel command."""
    for verb, text in (
        ("approve", "approve a model version and make it the champion"),
        (
            "reject",
            "reject a model version (a rejected champion hands over to the newest Approved)",
        ),
    ):
        command = commands.add_parser(verb, help=text)
        command.add_argument("name", help="the registered model's name")
        command.add_argument("version", type=int, help="the version to decide on")
        command.add_argument("--note", required=True, help="why: kept in the audit trail")
        command.add_argument(
            "--by", default="", help="who decides (default: the OS user, or the AWS caller ARN)"
        )
        _registry_option(command)
        if verb == "approve":
            command.add_argument(
                "--force", action="store_true", help="approve a version that was Rejected"
            )
    registry = commands.add_parser("registry", help="look at the model registry")
    actions = registry.add_subparsers(dest="action", required=True, parser_class=parser_class)
    show = actions.add_parser(
        "show", help="versions with stage, approval status and audit trail (who, when, why)"
    )
    show.add_argument("name", help="the registered model's name")
    show.add_argument("version", type=int, nargs="?", help="one version only")
    _registry_option(show)


def _open(args: argparse.Namespace, home: Home) -> ModelRegistry:
    from flywheel.components.registry import open_registry

    return open_registry(args.registry or str(home.registry))


def _who(args: argparse.Namespace, registry: ModelRegistry) -> str:
    if args.by:
        return args.by
    caller = getattr(registry, "caller", None)
    if caller is not None:
        return caller()
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return "unknown"


def decide_command(args: argparse.Namespace, home: Home, console: Console) -> int:
    """``flywheel approve`` or ``flywheel reject``."""
    registry = _open(args, home)
    registry.get(args.name, args.version)  # an unknown version is refused before anything else
    by = _who(args, registry)
    if args.command == "approve":
        version = registry.promote(args.name, args.version, args.note, by=by, force=args.force)
    else:
        version = registry.set_approval(args.name, args.version, "Rejected", by=by, note=args.note)
    champion = registry.champion(args.name)
    console.print(
        f"{args.name} version {version.version}: {version.approval} by {by}; champion: "
        + (f"version {champion.version}" if champion else "none (no version is Approved)"),
        highlight=False,
        markup=False,
    )
    return 0


def show_command(args: argparse.Namespace, home: Home, console: Console) -> int:
    """``flywheel registry show NAME [VERSION]``."""
    registry = _open(args, home)
    if args.version is not None:
        versions = [registry.get(args.name, args.version)]
    else:
        versions = registry.versions(args.name)
    if not versions:
        from flywheel.components.errors import RegistryError

        raise RegistryError(f"model {args.name} has no versions in {registry.uri}")
    for line in show_lines(versions):
        console.print(line, highlight=False, markup=False)
    return 0


def show_lines(versions: list[ModelVersion]) -> list[str]:
    """Each version on a line (stage, approval, metrics, when registered); below it, the MLflow run
    that tracked its training, and its decisions."""
    lines = []
    for version in versions:
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(version.metrics.items()))
        lines.append(
            f"{version.name} version {version.version}: {version.stage}, {version.approval}"
            + (f"; {metrics}" if metrics else "")
            + (f"; registered {version.created_at}" if version.created_at else "")
        )
        training = version.lineage.get("training", {})
        if training.get("tracking_run_id"):  # the MLflow run that recorded its training
            lines.append(
                f"  tracking: MLflow run {training['tracking_run_id']} "
                f"at {training.get('tracking_uri') or 'MLFLOW_TRACKING_URI'}"
            )
        for entry in version.approvals:
            note = f": {entry['note']}" if entry.get("note") else ""
            lines.append(
                f"  {entry.get('at') or 'unknown time'} {entry['status']} by {entry['by']}{note}"
            )
    return lines


def approval_summary(version: ModelVersion) -> str:
    """A run's last word on its version's approval: the status, and how to decide if pending."""
    if version.approval != "PendingManualApproval":
        return version.approval
    return (
        f"{version.approval}: decide with `flywheel approve {version.name} {version.version} "
        "--note ...` or `flywheel reject ...` (`flywheel registry show` for its trail)"
    )
