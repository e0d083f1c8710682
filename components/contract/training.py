"""The training-script contract: SageMaker's container contract, laid out anywhere.

A user's script reads everything it needs from its command line, the environment and well-known
files, so the same file runs unchanged on the local backend, on a SageMaker training job and inside
an EKS task pod. Locally and on EKS, SageMaker's own training toolkit (``sagemaker-training``)
starts the script (see :mod:`components.compute.local.toolkit`); this module writes what the toolkit
reads, exactly as SageMaker writes it:

* ``input/config/hyperparameters.json``: the user's hyperparameters as strings, plus the
  ``sagemaker_*`` keys the SageMaker Python SDK adds (the script's name and code archive);
* ``input/config/resourceconfig.json``: this host, alone in its cluster;
* ``input/config/inputdataconfig.json``: one entry per channel, in File mode;
* ``input/data/<channel>/``: each channel's files; ``model/``, ``output/``, ``output/data/``.

This module is the one place that knows the layout; nothing else builds these paths.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ML_ROOT = Path("/opt/ml")
FAILURE_FILE_NAME = "failure"
HYPERPARAMETERS_FILE_NAME = "hyperparameters.json"
RESOURCE_CONFIG_FILE_NAME = "resourceconfig.json"
INPUT_DATA_CONFIG_FILE_NAME = "inputdataconfig.json"
# SageMaker's DescribeTrainingJob shows the first 1024 characters of the failure file.
FAILURE_REASON_LIMIT = 1024
# The instance group SageMaker names a cluster of one kind of instance.
INSTANCE_GROUP = "homogeneousCluster"
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ContractLayout:
    """Where the contract's folders live for one job: ``/opt/ml`` in a container, a temp dir locally."""

    root: Path

    @property
    def code_dir(self) -> Path:
        return self.root / "code"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def input_config_dir(self) -> Path:
        return self.input_dir / "config"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / FAILURE_FILE_NAME

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    def channel_dir(self, channel: str) -> Path:
        return self.input_dir / "data" / channel

    def create(self, channels: list[str]) -> None:
        """Make every folder the script may expect to exist."""
        for folder in (
            self.model_dir,
            self.input_config_dir,
            self.output_data_dir,
            self.checkpoint_dir,
        ):
            folder.mkdir(parents=True, exist_ok=True)
        for channel in channels:
            self.channel_dir(channel).mkdir(parents=True, exist_ok=True)


def layout_for(root: Path | str = ML_ROOT) -> ContractLayout:
    """The contract's layout under ``root``."""
    return ContractLayout(Path(root))


def validate_channel_name(channel: str) -> str:
    """Channel names become environment variables and S3 channel names; reject what breaks either."""
    if not _CHANNEL_NAME.match(channel):
        raise ValueError(
            f"channel name {channel!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return channel


def sdk_hyperparameters(
    hyperparameters: Mapping[str, object],
    *,
    entry_point: str,
    submit_directory: str,
    job_name: str = "",
    region: str = "",
) -> dict[str, str]:
    """``hyperparameters.json`` as the SageMaker Python SDK writes it for a framework estimator.

    Every value is JSON-encoded, strings too (``"sqrt"`` becomes ``"\\"sqrt\\""``), as the SDK's
    framework estimators send them: the toolkit decodes each value, so a string stays a string on
    the script's command line (``--flag true``, not ``True``). The ``sagemaker_*`` keys tell the
    toolkit where the script is; it strips them from the command line.
    """
    values = {name: json.dumps(value) for name, value in hyperparameters.items()}
    values["sagemaker_program"] = json.dumps(entry_point)
    values["sagemaker_submit_directory"] = json.dumps(submit_directory)
    values["sagemaker_container_log_level"] = "20"
    if job_name:
        values["sagemaker_job_name"] = json.dumps(job_name)
    if region:
        values["sagemaker_region"] = json.dumps(region)
    return values


def resource_config(host: str, instance_type: str = "local") -> dict[str, object]:
    """``resourceconfig.json`` for a cluster of one host, with the keys SageMaker writes."""
    return {
        "current_host": host,
        "current_instance_type": instance_type,
        "current_group_name": INSTANCE_GROUP,
        "hosts": [host],
        "instance_groups": [
            {"instance_group_name": INSTANCE_GROUP, "instance_type": instance_type, "hosts": [host]}
        ],
        "network_interface_name": "eth0",
    }


def input_data_config(content_types: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """``inputdataconfig.json``: each channel (name to content type) in File mode, fully replicated."""
    config = {}
    for channel, content_type in sorted(content_types.items()):
        entry = {
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
        if content_type:
            entry["ContentType"] = content_type
        config[validate_channel_name(channel)] = entry
    return config


def write_config_files(
    layout: ContractLayout,
    *,
    hyperparameters: Mapping[str, str],
    resources: Mapping[str, object],
    channels: Mapping[str, object],
) -> None:
    """Write the three files of ``input/config`` that SageMaker writes before a job starts."""
    layout.input_config_dir.mkdir(parents=True, exist_ok=True)
    for name, content in (
        (HYPERPARAMETERS_FILE_NAME, hyperparameters),
        (RESOURCE_CONFIG_FILE_NAME, resources),
        (INPUT_DATA_CONFIG_FILE_NAME, channels),
    ):
        (layout.input_config_dir / name).write_text(json.dumps(content, indent=2, sort_keys=True))


def read_failure_reason(layout: ContractLayout) -> str | None:
    """The script's own explanation of why it failed, if it wrote one (as much as SageMaker shows)."""
    if not layout.failure_file.is_file():
        return None
    reason = layout.failure_file.read_text(errors="replace").strip()
    return reason[:FAILURE_REASON_LIMIT] or None
