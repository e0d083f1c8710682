"""Where the training pod lands on EKS, as a typed config checked before anything compiles.

A placement is read from YAML (``--placement FILE``) or from the ``compute_config`` of the
``eks-gpu`` backend. Every value is checked against the rule Kubernetes (or KFP's compiler)
would apply later, so a bad value fails here, naming its field, instead of as a pod that
never schedules. Example::

    gpus: 1
    cpu: {request: "6", limit: "7"}
    memory: {request: 24Gi, limit: 28Gi}
    node: {nodegroup: gpu}          # or {nodepool: gpu} (Karpenter) or {instance_type: g5.2xlarge}
    shm_size: 8Gi                   # /dev/shm, memory-backed; counts against memory.limit
    cache: {mount_path: /cache, size: 100Gi, storage_class: gp3}   # or {mount_path, pvc: NAME}
    image_pull_policy: IfNotPresent
    image_pull_secrets: [registry-credentials]
    labels: {team: chemistry, cost-center: "4711"}
    annotations: {karpenter.sh/do-not-disrupt: "true"}
    timeout_seconds: 21600

The service account (IRSA) is not part of it: KFP sets it per run, when the run is submitted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from flywheel.components.errors import InvalidSpecError

DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"
SHM_MOUNT_PATH = "/dev/shm"
# The node label each way of choosing nodes selects on.
NODE_LABELS = {
    "nodegroup": "eks.amazonaws.com/nodegroup",
    "nodepool": "karpenter.sh/nodepool",
    "instance_type": "node.kubernetes.io/instance-type",
}
IMAGE_PULL_POLICIES = ("Always", "IfNotPresent", "Never")

# Memory: the quantities both Kubernetes and KFP's compiler accept (KFP refuses decimals and
# "k"; Kubernetes refuses "K"), so a value that passes here passes both.
_MEMORY = re.compile(r"^([0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?$")
_MEMORY_FACTORS = {
    None: 1,
    **{suffix: 1024**power for power, suffix in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), 1)},
    **{suffix: 1000**power for power, suffix in enumerate(("M", "G", "T", "P", "E"), 2)},
}
_CPU = re.compile(r"^(?:([0-9]+(?:\.[0-9]{1,3})?)|([0-9]+)m)$")
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?$")


def memory_bytes(quantity: str, field_name: str) -> int:
    """A memory quantity in bytes, or an error naming ``field_name`` and the accepted forms."""
    match = _MEMORY.match(quantity) if isinstance(quantity, str) else None
    if match is None:
        raise InvalidSpecError(
            field_name,
            f"{quantity!r} is not a memory quantity: write a whole number with an optional "
            "suffix Ki, Mi, Gi, Ti, Pi, Ei, M, G, T, P or E (for example 24Gi)",
        )
    return int(match.group(1)) * _MEMORY_FACTORS[match.group(2)]


def cpu_cores(quantity: str, field_name: str) -> Decimal:
    """A CPU quantity in cores (``"500m"`` is 0.5), or an error naming ``field_name``."""
    match = _CPU.match(quantity) if isinstance(quantity, str) else None
    if match is None or Decimal(match.group(1) or match.group(2)) == 0:
        raise InvalidSpecError(
            field_name,
            f"{quantity!r} is not a CPU quantity: write cores (2, 0.5) or millicores (500m)",
        )
    cores, millicores = match.groups()
    return Decimal(cores) if cores is not None else Decimal(millicores) / 1000


def check_label_value(value: object, field_name: str) -> str:
    """Kubernetes label values: at most 63 letters, digits, '-', '_' or '.', alphanumeric at both ends."""
    if not isinstance(value, str) or not _LABEL_VALUE.match(value):
        raise InvalidSpecError(
            field_name,
            f"{value!r} is not a valid label value: use at most 63 letters, digits, '-', '_' or "
            "'.', starting and ending with a letter or digit",
        )
    return value


def check_qualified_name(key: object, field_name: str) -> str:
    """Label and annotation keys: ``[prefix/]name``, the prefix a DNS subdomain."""
    prefix, _, name = key.rpartition("/") if isinstance(key, str) else ("", "", "")
    if not _LABEL_NAME.match(name) or (prefix and not _DNS_SUBDOMAIN.match(prefix)):
        raise InvalidSpecError(
            field_name,
            f"{key!r} is not a valid key: write [prefix/]name, the name at most 63 letters, digits, "
            "'-', '_' or '.', the prefix a lower-case DNS name",
        )
    return key


def _check_name(value: object, pattern: re.Pattern[str], field_name: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise InvalidSpecError(field_name, f"{value!r} is not a valid {what}")
    return value


def _check_mount_path(path: object, field_name: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or path.rstrip("/") == SHM_MOUNT_PATH:
        raise InvalidSpecError(
            field_name, f"{path!r} must be an absolute path other than {SHM_MOUNT_PATH}"
        )
    return path


@dataclass(frozen=True)
class Resource:
    """A request and a limit; Kubernetes refuses a request above its limit, and so do we."""

    request: str | None = None
    limit: str | None = None


@dataclass(frozen=True)
class NodeTarget:
    """One node label the pod must match: a managed node group, a Karpenter NodePool or a type."""

    label: str
    value: str

    def __post_init__(self) -> None:
        if self.label not in NODE_LABELS.values():
            raise InvalidSpecError(
                "placement.node", f"{self.label!r} is not one of {', '.join(NODE_LABELS.values())}"
            )
        check_label_value(self.value, f"placement.node.{_node_kind(self.label)}")


@dataclass(frozen=True)
class CacheVolume:
    """A data cache: a fresh EBS volume per pod (``size``) or an existing claim (``pvc``)."""

    mount_path: str
    size: str | None = None
    storage_class: str | None = None
    pvc: str | None = None
    access_mode: str = "ReadWriteOnce"

    def __post_init__(self) -> None:
        _check_mount_path(self.mount_path, "placement.cache.mount_path")
        if (self.size is None) == (self.pvc is None):
            raise InvalidSpecError(
                "placement.cache",
                "give either size (a new volume per pod) or pvc (an existing claim)",
            )
        if self.pvc is not None:
            _check_name(self.pvc, _DNS_SUBDOMAIN, "placement.cache.pvc", "claim name")
        else:
            memory_bytes(self.size, "placement.cache.size")
        if self.storage_class is not None:
            _check_name(
                self.storage_class, _DNS_SUBDOMAIN, "placement.cache.storage_class", "class name"
            )
        if self.access_mode not in ("ReadWriteOnce", "ReadWriteOncePod"):
            raise InvalidSpecError(
                "placement.cache.access_mode",
                f"{self.access_mode!r}: a per-pod cache is ReadWriteOnce or ReadWriteOncePod",
            )


@dataclass(frozen=True)
class Placement:
    """Everything that decides where and how the training pod runs on EKS."""

    gpus: int = 1
    gpu_type: str | None = None
    cpu: Resource = field(default_factory=Resource)
    memory: Resource = field(default_factory=Resource)
    node: NodeTarget | None = None
    shm_size: str | None = None
    cache: CacheVolume | None = None
    image_pull_policy: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.gpus, int) or isinstance(self.gpus, bool) or self.gpus < 0:
            raise InvalidSpecError("placement.gpus", f"{self.gpus!r} is not a whole number >= 0")
        if self.gpu_type is not None:
            if self.gpus == 0:
                raise InvalidSpecError(
                    "placement.gpus", f"is 0 but gpu_type is {self.gpu_type!r}; ask for 1 or more"
                )
            check_qualified_name(self.gpu_type, "placement.gpu_type")
            if "/" not in self.gpu_type:
                raise InvalidSpecError(
                    "placement.gpu_type",
                    f"{self.gpu_type!r} is not an extended resource name such as nvidia.com/gpu",
                )
        self._check_pair(self.cpu, "cpu", cpu_cores)
        memory_limit = self._check_pair(self.memory, "memory", memory_bytes)
        if self.shm_size is not None:
            shm = memory_bytes(self.shm_size, "placement.shm_size")
            if memory_limit is None:
                raise InvalidSpecError(
                    "placement.shm_size",
                    "needs memory.limit: a memory-backed /dev/shm counts against it",
                )
            if shm > memory_limit:
                raise InvalidSpecError(
                    "placement.shm_size",
                    f"{self.shm_size} is larger than memory.limit {self.memory.limit}",
                )
        if self.image_pull_policy not in (None, *IMAGE_PULL_POLICIES):
            raise InvalidSpecError(
                "placement.image_pull_policy",
                f"{self.image_pull_policy!r} is not one of {', '.join(IMAGE_PULL_POLICIES)}",
            )
        for index, secret in enumerate(self.image_pull_secrets):
            _check_name(
                secret, _DNS_SUBDOMAIN, f"placement.image_pull_secrets[{index}]", "secret name"
            )
        for key, value in self.labels.items():
            check_qualified_name(key, f"placement.labels.{key}")
            check_label_value(value, f"placement.labels.{key}")
        for key, value in self.annotations.items():
            check_qualified_name(key, f"placement.annotations.{key}")
            if not isinstance(value, str):
                raise InvalidSpecError(f"placement.annotations.{key}", f"{value!r} is not a string")
        if self.timeout_seconds is not None and (
            not isinstance(self.timeout_seconds, int)
            or isinstance(self.timeout_seconds, bool)
            or self.timeout_seconds < 1
        ):
            raise InvalidSpecError(
                "placement.timeout_seconds", f"{self.timeout_seconds!r} is not a whole number >= 1"
            )

    @staticmethod
    def _check_pair(pair: Resource, name: str, parse: Callable[[str, str], Any]) -> Any:
        """Parse both values and refuse a request above the limit; returns the parsed limit."""
        request = None if pair.request is None else parse(pair.request, f"placement.{name}.request")
        limit = None if pair.limit is None else parse(pair.limit, f"placement.{name}.limit")
        if request is not None and limit is not None and request > limit:
            raise InvalidSpecError(
                f"placement.{name}.request", f"{pair.request} is above the limit {pair.limit}"
            )
        return limit

    @property
    def accelerator(self) -> str | None:
        """The extended resource the GPUs are counted in, or None for a CPU-only pod."""
        return (self.gpu_type or DEFAULT_GPU_RESOURCE) if self.gpus else None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Placement:
        """Read a placement from YAML or JSON values; unknown keys are refused (typos, mostly)."""
        raw = _mapping(raw, "placement")
        _refuse_unknown(raw, {f.name for f in cls.__dataclass_fields__.values()}, "placement")
        values = dict(raw)
        for name in ("cpu", "memory"):
            if name in values:
                pair = _mapping(values[name], f"placement.{name}")
                _refuse_unknown(pair, {"request", "limit"}, f"placement.{name}")
                values[name] = Resource(**{k: _text(v) for k, v in pair.items()})
        if values.get("node") is not None:
            values["node"] = _node_target(_mapping(values["node"], "placement.node"))
        if values.get("cache") is not None:
            cache = _mapping(values["cache"], "placement.cache")
            _refuse_unknown(cache, set(CacheVolume.__dataclass_fields__), "placement.cache")
            values["cache"] = CacheVolume(**{k: _text(v) for k, v in cache.items()})
        for name in ("labels", "annotations"):
            if name in values:
                values[name] = {
                    str(k): _text(v) for k, v in _mapping(values[name], f"placement.{name}").items()
                }
        if "image_pull_secrets" in values:
            secrets = values["image_pull_secrets"]
            if not isinstance(secrets, list | tuple):
                raise InvalidSpecError("placement.image_pull_secrets", "must be a list of names")
            values["image_pull_secrets"] = tuple(secrets)
        for name in ("gpus", "timeout_seconds"):
            if isinstance(values.get(name), float) and values[name].is_integer():
                # KFP hands dict parameters over as protobuf Structs, whose numbers are floats.
                values[name] = int(values[name])
        if values.get("shm_size") is not None:
            values["shm_size"] = _text(values["shm_size"])
        return cls(**values)

    def to_mapping(self) -> dict[str, Any]:
        """The plain values :meth:`from_mapping` reads back: what travels as ``compute_config``."""
        values = asdict(self)
        values["image_pull_secrets"] = list(self.image_pull_secrets)
        if self.node is not None:
            values["node"] = {_node_kind(self.node.label): self.node.value}
        return _without_unset(values)


def _without_unset(values: dict[str, Any]) -> dict[str, Any]:
    # KFP cannot compile None into a parameter default, and unset fields say nothing anyway.
    pruned = {k: _without_unset(v) if isinstance(v, dict) else v for k, v in values.items()}
    return {k: v for k, v in pruned.items() if v not in (None, {}, [])}


def _node_kind(label: str) -> str:
    return next(kind for kind, node_label in NODE_LABELS.items() if node_label == label)


def _node_target(raw: Mapping[str, Any]) -> NodeTarget:
    _refuse_unknown(raw, set(NODE_LABELS), "placement.node")
    if len(raw) != 1:
        raise InvalidSpecError(
            "placement.node", f"choose exactly one of {', '.join(NODE_LABELS)}; got {sorted(raw)}"
        )
    ((kind, value),) = raw.items()
    return NodeTarget(NODE_LABELS[kind], _text(value))


def _mapping(value: object, field_name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidSpecError(field_name, f"must be a mapping, got {value!r}")
    return value


def _text(value: object) -> object:
    # YAML reads `cpu: 2` and `cost-center: 4711` as numbers; Kubernetes wants strings.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _refuse_unknown(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise InvalidSpecError(
            f"{where}.{unknown[0]}", f"unknown setting; allowed: {', '.join(sorted(allowed))}"
        )


def load_placement(path: Path | str) -> Placement:
    """Read and check a placement YAML file."""
    path = Path(path)
    if not path.is_file():
        raise InvalidSpecError("placement", f"{path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise InvalidSpecError("placement", f"{path} is not valid YAML: {error}") from None
    return Placement.from_mapping(raw or {})
