"""In every compiled pipeline that trains, the train step outputs ``Metrics`` (final values, for
the Kubeflow UI's run comparison) and an ``HTML`` page of learning curves."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

COMPILED = Path(__file__).resolve().parents[2] / "pipelines" / "compiled"


@pytest.mark.parametrize(
    "pipeline", ["training.yaml", "training-eks-gpu.yaml", "evaluation.yaml", "tuning.yaml"]
)
def test_the_train_step_outputs_metrics_and_a_learning_curve_page(pipeline: str) -> None:
    # The first document is the pipeline spec; an EKS pipeline adds its platform spec after it.
    spec = next(yaml.safe_load_all((COMPILED / pipeline).read_text()))
    trains = [c for name, c in spec["components"].items() if name.startswith("comp-train-model")]
    assert trains
    for component in trains:
        outputs = component["outputDefinitions"]["artifacts"]
        kinds = {name: output["artifactType"]["schemaTitle"] for name, output in outputs.items()}
        assert kinds["metrics"] == "system.Metrics"
        assert kinds["learning_curves"] == "system.HTML"


def _tasks(spec: dict) -> list[dict]:
    """Every task of the pipeline, in its root and in each sub-DAG (loops, branches, nested)."""
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec["components"].values() if "dag" in c)]
    return [task for dag in dags for task in dag["tasks"].values()]


@pytest.mark.parametrize(
    "pipeline", ["training.yaml", "training-eks-gpu.yaml", "evaluation.yaml", "tuning.yaml"]
)
def test_every_train_task_tracks_to_the_runs_tracking_uri_parameter(pipeline: str) -> None:
    spec = next(yaml.safe_load_all((COMPILED / pipeline).read_text()))
    assert spec["root"]["inputDefinitions"]["parameters"]["tracking_uri"]["defaultValue"] == ""
    trains = [t for t in _tasks(spec) if t["componentRef"]["name"].startswith("comp-train-model")]
    assert trains
    for task in trains:
        given = task["inputs"]["parameters"]["tracking_uri"]["componentInputParameter"]
        assert given.endswith("tracking_uri")  # the pipeline's, or passed down as a channel
