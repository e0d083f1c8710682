"""Training on several hosts: what the SageMaker SDK accepts for ``torch_distributed``, checked here.

Flywheel sends one distribution option only, ``torch_distributed`` (``training._distribution``),
and only when ``instance_count`` is above 1. The SDK (``sagemaker.core.fw_utils``, the same in 2.x)
checks it in ``validate_distribution`` before any call:

- ``validate_torch_distributed_distribution``: GPU (``ml.p*``, ``ml.g*``) or Trainium
  (``ml.trn*``) instances only; ``framework_version`` in
  ``TORCH_DISTRIBUTED_GPU_SUPPORTED_FRAMEWORK_VERSIONS`` or
  ``TRAINIUM_SUPPORTED_TORCH_DISTRIBUTED_FRAMEWORK_VERSIONS``; a ``py3*`` ``py_version``. With an
  ``image_uri`` it skips the version checks, since it cannot know the image's PyTorch. It also
  wants a ``*.py`` entry point; that is the workload's, which a config does not see, so it is not
  checked here.
- ``validate_distribution_for_instance_type``: Trainium takes ``torch_distributed`` alone, which is
  all we send.

The other options' floors (smdistributed ``dataparallel``'s versions and instance types, which
``pytorchddp`` is rewritten to; ``mpi``; ``pytorchxla``) cannot be reached from a Flywheel config.
The lists are read from the installed SDK, not copied, so they move with it.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import json
from pathlib import Path

from flywheel.components.errors import InvalidSpecError


def _sdk_file(relative: str) -> Path:
    """A file of the installed sagemaker-core, found without importing it.

    Importing ``sagemaker.core`` takes seconds, and every step loads its config; the lists below
    are plain literals in ``fw_utils.py`` and the image table is JSON, so both are read as files.
    """
    located = importlib.metadata.distribution("sagemaker-core").locate_file(
        f"sagemaker/core/{relative}"
    )
    return Path(str(located))


@functools.cache
def _supported_versions() -> dict[str, tuple[str, ...]]:
    """The SDK's torch_distributed versions per accelerator, as ``fw_utils.py`` defines them."""
    names = {
        "TORCH_DISTRIBUTED_GPU_SUPPORTED_FRAMEWORK_VERSIONS": "GPU",
        "TRAINIUM_SUPPORTED_TORCH_DISTRIBUTED_FRAMEWORK_VERSIONS": "Trainium",
    }
    found = {
        names[target.id]: tuple(ast.literal_eval(node.value))
        for node in ast.parse(_sdk_file("fw_utils.py").read_text()).body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and target.id in names
    }
    missing = set(names.values()) - set(found)
    if missing:
        raise RuntimeError(f"sagemaker-core's fw_utils.py no longer lists {sorted(missing)}")
    return found


@functools.cache
def _version_aliases() -> dict[str, str]:
    """The image table's short versions ("2.3") and the full version each runs ("2.3.0")."""
    table = json.loads(_sdk_file("image_uri_config/pytorch.json").read_text())
    return dict(table["training"].get("version_aliases", {}))


def accelerator(instance_type: str) -> str | None:
    """``GPU``, ``Trainium`` or None, by the instance family as the SDK's ``_is_gpu_instance`` and
    ``_is_trainium_instance`` read it (``ml.<family>.<size>``)."""
    family = instance_type.split(".")[1] if instance_type.count(".") >= 1 else ""
    if family.startswith("trn"):
        return "Trainium"
    if family.startswith(("p", "g")):
        return "GPU"
    return None


def check_torch_distributed(
    hosts: int,
    framework: str | None,
    framework_version: str | None,
    py_version: str | None,
    instance_type: str,
) -> None:
    """Refuse, naming the field, a multi-host config that SageMaker's ``torch_distributed`` refuses.

    Several hosts must train one model together; otherwise each trains its own copy. A version is
    checked as the image table resolves it ("2.3" runs the 2.3.0 image): the SDK compares the
    string as given, so it refuses "2.3" though the image it would pick is supported; we accept
    it. An ``image_uri`` carries no version we know, but it cannot reach this check: several hosts
    need ``framework: pytorch``, and a config gives either a framework or an image.
    """
    if framework != "pytorch":
        raise InvalidSpecError(
            "compute_config.instance_count",
            f"{hosts} hosts would each train an independent copy: multi-host training is "
            "supported with framework: pytorch (SageMaker's torch_distributed)",
        )
    kind = accelerator(instance_type)
    if kind is None:
        raise InvalidSpecError(
            "compute_config.instance_type",
            f"{instance_type!r}: SageMaker's torch_distributed runs on GPU (ml.p*, ml.g*) or "
            "Trainium (ml.trn*) instances",
        )
    if py_version is not None and "py3" not in py_version:
        raise InvalidSpecError(
            "compute_config.py_version",
            f"{py_version!r}: SageMaker's torch_distributed needs py3 or later",
        )
    allowed = _supported_versions()[kind]
    version = framework_version or ""
    resolved = _version_aliases().get(version, version)
    if version not in allowed and resolved not in allowed:
        shown = version if resolved == version else f"{version} (PyTorch {resolved})"
        raise InvalidSpecError(
            "compute_config.framework_version",
            f"{shown} is not supported by SageMaker's torch_distributed on {kind} instances "
            f"({instance_type}); {hosts} hosts need one of {', '.join(allowed)}",
        )
