"""Fixtures for the training foundation: throwaway workloads with scripts that behave in known ways."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QSAR_WORKLOAD = REPO / "examples" / "qsar" / "workload.yaml"

WORKLOAD_YAML = """\
name: {name}
entry_point: train.py
data: {{id_column: id, feature_columns: [x], label_column: y}}
hyperparameters:
  epochs: {{type: int, default: 2, minimum: 1}}
  rate: {{type: float, default: 0.5}}
  verbose: {{type: bool, default: false}}
metric_definitions:
  - {{name: loss, regex: 'loss=([0-9.eE+-]+)'}}
objective: {{metric: rmse, goal: minimize}}
"""


@pytest.fixture
def make_workload(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a workload folder whose ``train.py`` is ``script``; returns the workload.yaml path."""

    def make(script: str, name: str = "toy-model") -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "train.py").write_text(textwrap.dedent(script))
        (folder / "workload.yaml").write_text(WORKLOAD_YAML.format(name=name))
        return folder / "workload.yaml"

    return make


@pytest.fixture
def toy_table(tmp_path: Path) -> Path:
    """Twenty labelled rows with columns id, x, y."""
    path = tmp_path / "table.csv"
    path.write_text("id,x,y\n" + "".join(f"{i},{i},{2 * i + 1}\n" for i in range(20)))
    return path
