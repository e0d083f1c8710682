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
