"""Find the boto3 calls in source code, by what they call rather than by what the client is named.

A call is ``<receiver>.<method>(...)`` whose method is an operation of one of the services the
SageMaker path uses (as botocore's models name them), or a transfer method boto3 adds to S3;
receivers that are imported modules (``re.search``) or module-level names (a compiled pattern's
``.search``) are not clients: clients are passed in, never kept at module level. Two indirect forms count
too: ``get_paginator("<operation>")``, and a method name built in an f-string around a job kind
(``f"create_{self._snake}_job"``), which is tried with every kind ``jobs.py`` defines.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import botocore.session
from botocore import xform_name

from flywheel.components.compute.sagemaker import jobs

REPO = Path(__file__).resolve().parents[2]
COMPONENTS = REPO / "components"
# Where the SageMaker path's calls live: the launchers, the registry, the endpoint component and
# the steps that run on the cluster with the pipeline runner's role.
SAGEMAKER_PATH = (
    COMPONENTS / "compute" / "sagemaker",
    COMPONENTS / "compute" / "aws.py",
    COMPONENTS / "registry",
    COMPONENTS / "monitoring" / "cloudwatch.py",
    COMPONENTS / "steps",
    COMPONENTS / "deployment.py",
)
SERVICES = ("sagemaker", "s3", "logs", "cloudwatch", "sts", "iam")
S3_TRANSFERS = frozenset({"upload_file", "download_file", "upload_fileobj", "download_fileobj"})


@cache
def operations() -> dict[str, frozenset[str]]:
    """Each service's client methods, as boto3 names them."""
    session = botocore.session.get_session()
    methods = {
        service: frozenset(
            xform_name(name) for name in session.get_service_model(service).operation_names
        )
        for service in SERVICES
    }
    methods["s3"] |= S3_TRANSFERS
    return methods


def _job_snakes() -> list[str]:
    kinds = [value for value in vars(jobs).values() if isinstance(value, jobs.JobType)]
    return [xform_name(kind.noun) for kind in kinds]


def _not_clients(tree: ast.Module) -> set[str]:
    """Names that cannot hold a client: imported modules, and names the module itself assigns."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.asname or alias.name.split(".")[0] for alias in node.names}
    for statement in tree.body:
        targets = (
            statement.targets
            if isinstance(statement, ast.Assign)
            else [statement.target]
            if isinstance(statement, ast.AnnAssign)
            else []
        )
        names |= {target.id for target in targets if isinstance(target, ast.Name)}
    return names


def _method_names(tree: ast.Module) -> set[str]:
    not_clients = _not_clients(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = node.func.value
            if not (isinstance(receiver, ast.Name) and receiver.id in not_clients):
                names.add(node.func.attr)
            if node.func.attr == "get_paginator" and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names.add(first.value)
        if isinstance(node, ast.JoinedStr) and len(node.values) == 3:
            before, middle, after = node.values
            if (
                isinstance(before, ast.Constant)
                and isinstance(middle, ast.FormattedValue)
                and isinstance(after, ast.Constant)
            ):
                names |= {f"{before.value}{snake}{after.value}" for snake in _job_snakes()}
    return names


def calls_in(source: str) -> set[str]:
    """The boto3 calls in ``source``, as ``<service>.<method>``."""
    found = _method_names(ast.parse(source))
    return {
        f"{service}.{method}"
        for service, methods in operations().items()
        for method in found & methods
    }


def calls_on_the_sagemaker_path() -> dict[str, list[str]]:
    """Every boto3 call on the SageMaker path, with the files that make it."""
    files = sorted(
        path
        for place in SAGEMAKER_PATH
        for path in ([place] if place.is_file() else place.rglob("*.py"))
    )
    where: dict[str, list[str]] = {}
    for path in files:
        for call in calls_in(path.read_text()):
            where.setdefault(call, []).append(str(path.relative_to(REPO)))
    return where
