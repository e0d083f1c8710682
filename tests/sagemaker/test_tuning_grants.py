"""A tuning run asks IAM for the tuning calls, and only a tuning run does; the shipped runner
policy grants them."""

from __future__ import annotations

from flywheel.components.compute.sagemaker.grants import simulations

from .test_grants import FIELDS
from .test_iam import EXAMPLE_RUN, allows, statements

TUNING_JOBS = "arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/*"


def test_a_tuning_run_asks_for_the_tuning_job_calls_and_to_pass_the_role():
    asked = simulations(["tuning"], FIELDS)

    assert set(asked[("caller", TUNING_JOBS, ())]) == {
        "sagemaker:CreateHyperParameterTuningJob",
        "sagemaker:AddTags",
        "sagemaker:DescribeHyperParameterTuningJob",
        "sagemaker:StopHyperParameterTuningJob",
        "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
    }
    assert asked[("caller", "*", ())] == ("sagemaker:ListHyperParameterTuningJobs",)
    passing = (("iam:PassedToService", "sagemaker.amazonaws.com"),)
    assert asked[("caller", FIELDS["role_arn"], passing)] == ("iam:PassRole",)


def test_a_run_that_does_not_tune_is_not_asked_for_tuning_calls():
    asked = simulations(["jobs", "registry", "endpoint", "metrics"], FIELDS)

    actions = {action for actions in asked.values() for action in actions}
    assert not any("HyperParameterTuning" in action for action in actions)


def test_the_runner_policy_grants_every_tuning_call():
    policy = statements("pipeline-runner-policy.json")
    missing = [
        f"{action} on {resource}"
        for (who, resource, context), actions in simulations(["tuning"], EXAMPLE_RUN).items()
        for action in actions
        if who == "caller" and not allows(policy, action, resource, context)
    ]

    assert missing == []
