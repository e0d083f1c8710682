"""The training-script contract: SageMaker's container contract, laid out anywhere.

A user's script reads everything it needs from the environment and well-known files, so the same
file runs unchanged on the local backend, on a SageMaker training job and inside an EKS task pod:

* ``SM_MODEL_DIR``: write the model here; it is packed into ``model.tar.gz`` afterwards.
* ``SM_CHANNEL_<NAME>``: one folder per input channel (``SM_CHANNEL_TRAIN``, ``SM_CHANNEL_TEST``);
  ``SM_CHANNELS`` lists the channel names as JSON.
* ``SM_HPS``: all hyperparameters as a JSON object; the same values as strings in
  ``<SM_INPUT_CONFIG_DIR>/hyperparameters.json`` (``/opt/ml/input/config/hyperparameters.json``).
* ``SM_OUTPUT_DIR``: write ``failure`` here with a one-line reason before exiting non-zero.
* ``SM_OUTPUT_DATA_DIR``: other outputs, packed into ``output.tar.gz``.
* Metrics are printed to stdout as lines that a metric definition's regex can read,
  for example ``rmse=0.712``.

This module is the one place that knows the layout. Backends call :func:`layout_for` and
:func:`environment_for`; nothing else builds these paths.
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
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ContractLayout:
    """Where the contract's folders live for one job: ``/opt/ml`` in a container, a temp dir locally."""

    root: Path

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
    def hyperparameters_file(self) -> Path:
        return self.input_config_dir / HYPERPARAMETERS_FILE_NAME

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


def hyperparameters_as_strings(hyperparameters: Mapping[str, object]) -> dict[str, str]:
    """SageMaker hands hyperparameters to the script as strings; so do we, everywhere.

    Strings pass as they are; everything else is JSON-encoded (``True`` becomes ``"true"``).
    """
    return {
        name: value if isinstance(value, str) else json.dumps(value)
        for name, value in hyperparameters.items()
    }


def environment_for(
    layout: ContractLayout,
    channels: list[str],
    hyperparameters: Mapping[str, object],
    *,
    num_gpus: int = 0,
    num_cpus: int = 1,
    current_host: str = "algo-1",
) -> dict[str, str]:
    """The ``SM_*`` environment a script sees, as SageMaker's training toolkit sets it."""
    environment = {
        "SM_MODEL_DIR": str(layout.model_dir),
        "SM_INPUT_DIR": str(layout.input_dir),
        "SM_INPUT_CONFIG_DIR": str(layout.input_config_dir),
        "SM_OUTPUT_DIR": str(layout.output_dir),
        "SM_OUTPUT_DATA_DIR": str(layout.output_data_dir),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_HPS": json.dumps(dict(hyperparameters)),
        "SM_NUM_GPUS": str(num_gpus),
        "SM_NUM_CPUS": str(num_cpus),
        "SM_HOSTS": json.dumps([current_host]),
        "SM_CURRENT_HOST": current_host,
    }
    for channel in channels:
        environment[f"SM_CHANNEL_{channel.upper()}"] = str(layout.channel_dir(channel))
    for name, value in hyperparameters_as_strings(hyperparameters).items():
        environment[f"SM_HP_{name.upper()}"] = value
    return environment


def write_hyperparameters_file(
    layout: ContractLayout, hyperparameters: Mapping[str, object]
) -> None:
    """Write ``hyperparameters.json`` with string values, exactly as SageMaker does."""
    layout.input_config_dir.mkdir(parents=True, exist_ok=True)
    layout.hyperparameters_file.write_text(
        json.dumps(hyperparameters_as_strings(hyperparameters), indent=2, sort_keys=True)
    )


def read_failure_reason(layout: ContractLayout) -> str | None:
    """The script's own explanation of why it failed, if it wrote one."""
    if not layout.failure_file.is_file():
        return None
    reason = layout.failure_file.read_text(errors="replace").strip()
    return reason or None
