"""``flywheel deployments check FILE...``: refuse a ``ModelDeployment`` before git or the cluster
takes it.

The CRD's schema and CEL refuse what can be judged from the resource alone. Whether a pinned
version exists can only be judged against the registry, and no admission webhook asks it, so
this command does: run it in the pull request that changes a deployment (or before ``kubectl
apply``). It checks each ``ModelDeployment`` in the files as the operator would (the same spec
parser, the same registry read), and refuses the first problem in one line naming the file and
the field. A pinned version that exists but is not Approved yet is accepted: the operator waits
for its approval, which is what pinning a version ahead of its approval asks for.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.components.errors import InvalidSpecError

if TYPE_CHECKING:
    from rich.console import Console

KIND = "ModelDeployment"
API_VERSION = "flywheel.dev/v1alpha1"


def add_deployments_commands(commands: argparse._SubParsersAction, parser_class: type) -> None:
    """``deployments check`` under the flywheel command."""
    deployments = commands.add_parser("deployments", help="check ModelDeployment resources")
    actions = deployments.add_subparsers(dest="action", required=True, parser_class=parser_class)
    check = actions.add_parser(
        "check",
        help="check ModelDeployments as the operator would, pinned versions against the registry",
    )
    check.add_argument("files", nargs="+", type=Path, help="YAML files holding ModelDeployments")


def _deployments(path: Path) -> list[dict[str, Any]]:
    import yaml  # not on `flywheel --help`'s import path

    try:
        documents = list(yaml.safe_load_all(path.read_text()))
    except OSError as error:
        raise InvalidSpecError(str(path), f"cannot be read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise InvalidSpecError(str(path), f"is not YAML: {error}") from None
    found = [
        doc
        for doc in documents
        if isinstance(doc, dict)
        and doc.get("kind") == KIND
        and doc.get("apiVersion") == API_VERSION
    ]
    if not found:
        raise InvalidSpecError(str(path), f"holds no {API_VERSION} {KIND}")
    return found


def check_deployment(resource: dict[str, Any], where: str, sagemaker: Any | None = None) -> str:
    """One line on ``resource`` if the operator would deploy from it; ``InvalidSpecError``
    naming ``where`` and the field otherwise. ``sagemaker`` is a client for the registry's region
    (made from the spec when not given)."""
    from flywheel.components.compute.aws import aws_client
    from flywheel.operators.deployment_spec import parse_deployment
    from flywheel.operators.policy import InvalidPolicy
    from flywheel.operators.serving_reads import target

    name = (resource.get("metadata") or {}).get("name", "?")
    try:
        deployment = parse_deployment(resource.get("spec") or {})
    except InvalidPolicy as error:
        raise InvalidSpecError(f"{where} ({name})", str(error)) from None
    pinned = [(i, s) for i, s in enumerate(deployment.stages) if s.version is not None]
    if pinned and sagemaker is None:
        region = deployment.region or deployment.compute_config.get("region") or ""
        sagemaker = aws_client("sagemaker", region)
    for index, stage in pinned:
        found = target(sagemaker, deployment.model, stage, f"spec.stages[{index}]")
        if found["ok"] or found["reason"] == "NotApproved":
            continue
        raise InvalidSpecError(f"{where} ({name})", found["message"])
    stages = ", ".join(
        f"{s.name}={s.version if s.version is not None else 'newest Approved'}"
        for s in deployment.stages
    )
    return f"{where}: {name} can be deployed ({stages})"


def check_command(args: argparse.Namespace, console: Console) -> int:
    """``flywheel deployments check FILE...``."""
    for path in args.files:
        for index, resource in enumerate(_deployments(path)):
            console.print(check_deployment(resource, f"{path}#{index}"), highlight=False)
    return 0
