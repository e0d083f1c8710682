"""``flywheel submit tuning`` starts the tuning pipeline on Kubeflow as it does the others."""

from __future__ import annotations

import pytest

from flywheel.operators.kfp_standin import KfpStandIn
from flywheel.pipelines.cli import main


@pytest.fixture
def kfp_api():
    with KfpStandIn() as api:
        yield api


def test_submit_starts_the_tuning_pipeline_with_its_typed_parameters(kfp_api, capsys) -> None:
    status = main(
        [
            "submit",
            "tuning",
            "--host",
            kfp_api.url,
            "--run-name",
            "search",
            "--param",
            "compute=sagemaker",
            "--param",
            'hyperparameters={"seed": 11}',
        ]
    )
    assert status == 0, capsys.readouterr().err
    (run,) = kfp_api.runs_named("search")
    assert run["runtime_config"]["parameters"] == {
        "compute": "sagemaker",
        "hyperparameters": {"seed": 11},
    }
    spec = run["pipeline_spec"]
    assert spec["pipelineInfo"]["name"] == "flywheel-tuning"
    assert spec["root"]["inputDefinitions"]["parameters"]["workload"]["defaultValue"] == (
        "builtin:qsar-tuning"
    )
