"""Wiring an output to an input of another type is refused when the pipeline is defined.

KFP 2.17 checks every argument against the input's declared type as the task is created (in
``kfp.dsl.types.type_utils.verify_type_compatibility``), so a mistake fails at ``@dsl.pipeline``,
before compiling or running, with a message naming the input, the component and both types.
"""

# No ``from __future__ import annotations``: KFP reads the pipelines' annotations as types.
import re

import pytest
from kfp import dsl
from kfp.dsl.types.type_utils import InconsistentTypeException

from flywheel.components import deploy_endpoint, evaluate_model, train_model

from .pipeline_parts import prepare_task


def _train(workload, train, test, **extra):
    return train_model(
        workload=workload,
        compute="local",
        compute_config={},
        hyperparameters={},
        code_fingerprint="",
        train=train,
        test=test,
        **extra,
    )


def test_metrics_fed_to_a_dataset_input_is_refused_naming_the_input_and_both_types() -> None:
    expected = (
        "Incompatible argument passed to the input 'train' of component 'train-model': "
        "Argument type 'system.Metrics@0.0.1' is incompatible with the input type "
        "'system.Dataset@0.0.1'"
    )
    with pytest.raises(InconsistentTypeException, match=re.escape(expected)):

        @dsl.pipeline
        def miswired(workload: str = "builtin:qsar"):
            prepared = prepare_task(workload)
            trained = _train(workload, prepared.outputs["train"], prepared.outputs["test"])
            evaluated = evaluate_model(
                workload=workload,
                compute="local",
                compute_config={},
                model=trained.outputs["model"],
                test=prepared.outputs["test"],
            )
            _train(workload, evaluated.outputs["metrics"], prepared.outputs["test"])


def test_an_artifact_fed_to_a_parameter_input_is_refused() -> None:
    expected = (
        "Incompatible argument passed to the input 'channels' of component 'train-model': "
        "Argument type 'system.Dataset@0.0.1' is incompatible with the input type 'STRUCT'"
    )
    with pytest.raises(InconsistentTypeException, match=re.escape(expected)):

        @dsl.pipeline
        def miswired(workload: str = "builtin:qsar"):
            prepared = prepare_task(workload)
            train, test = prepared.outputs["train"], prepared.outputs["test"]
            _train(workload, train, test, channels=train)


def test_a_generic_artifact_output_is_accepted_by_any_artifact_input() -> None:
    # KFP's known gap: ``system.Artifact`` is compatible with every artifact type, so
    # ``deploy_endpoint``'s ``endpoint`` (an ``Output[Artifact]``) passes as a Dataset.
    # Only the component's own run would notice.
    @dsl.pipeline
    def accepted(workload: str = "builtin:qsar"):
        prepared = prepare_task(workload)
        deployed = deploy_endpoint(
            compute_config={}, model_package_arn="arn:model", endpoint_name="endpoint"
        )
        _train(workload, deployed.outputs["endpoint"], prepared.outputs["test"])

    assert "train-model" in accepted.pipeline_spec.root.dag.tasks
