"""Every boto3 call on the SageMaker path has its IAM grants in one table, and the table no more.

The source is scanned for calls (``boto3_calls``), so a call added without an entry in
``grants.OPERATIONS`` fails here, not in a run; the policies are held to the table in test_iam.py.
"""

from __future__ import annotations

from flywheel.components.compute.sagemaker.grants import OPERATIONS, simulations

from .boto3_calls import calls_in, calls_on_the_sagemaker_path

FIELDS: dict[str, str | tuple[str, ...]] = {
    "role_arn": "arn:aws:iam::123456789012:role/flywheel-sagemaker-execution",
    "region": "us-east-1",
    "account": "123456789012",
    "bucket": "flywheel-test",
    "prefix": "runs/",
    "registry_region": "eu-west-1",
    "registry_bucket": "flywheel-registry",
    "registry_prefix": "registry/",
    "model": "qsar",
    "endpoint": "qsar-prod",
    "alarm": ("qsar-5xx", "qsar-latency"),
    "namespace": "Flywheel/Quality",
    "caller_role": "arn:aws:iam::123456789012:role/flywheel-pipeline-runner",
}


def asked(*scopes: str) -> dict:
    return simulations(scopes, FIELDS)  # type: ignore[arg-type]


def test_every_boto3_call_on_the_sagemaker_path_has_its_grants_in_the_table():
    missing = {
        call: files
        for call, files in calls_on_the_sagemaker_path().items()
        if call not in OPERATIONS
    }
    assert missing == {}, "add these calls to grants.OPERATIONS (and the policies)"


def test_the_table_names_no_call_the_code_does_not_make():
    assert set(OPERATIONS) - set(calls_on_the_sagemaker_path()) == set()


def test_the_scan_finds_a_call_whatever_the_client_is_named_and_skips_modules():
    source = (
        "import re\n"
        "PATTERN = re.compile('x')\n"
        "def deploy(client, sm, self):\n"
        "    sm.delete_endpoint(EndpointName='x')\n"
        "    client.get_paginator('list_objects_v2')\n"
        "    getattr(client, f'list_{self._snake}_jobs')()\n"
        "    re.search('a', 'b'); PATTERN.search('b')\n"
    )
    calls = calls_in(source)

    assert "sagemaker.delete_endpoint" in calls
    assert "sagemaker.delete_endpoint" not in OPERATIONS  # so the first test would fail on it
    assert {"s3.list_objects_v2", "sagemaker.list_training_jobs"} <= calls
    assert {"sagemaker.list_processing_jobs", "sagemaker.list_transform_jobs"} <= calls
    assert "sagemaker.search" not in calls


def test_a_run_asks_to_list_its_s3_prefix_and_to_describe_its_models():
    jobs = asked("jobs")

    assert jobs[("caller", "arn:aws:s3:::flywheel-test", (("s3:prefix", "runs/"),))] == (
        "s3:ListBucket",
    )
    model = jobs[("caller", "arn:aws:sagemaker:us-east-1:123456789012:model/*", ())]
    assert "sagemaker:DescribeModel" in model


def test_every_attempt_is_found_with_list_actions_asked_on_any_resource():
    # IAM has no resource type for ListTrainingJobs and its kin: only "*" grants them.
    unscoped = asked("jobs")[("caller", "*", ())]

    assert set(unscoped) == {
        "sagemaker:ListTrainingJobs",
        "sagemaker:ListProcessingJobs",
        "sagemaker:ListTransformJobs",
    }
    assert not any("ListTags" in action for actions in asked("jobs").values() for action in actions)


def test_each_job_kind_is_created_with_its_tags_and_the_role_passed_only_to_sagemaker():
    jobs = asked("jobs")
    for kind in ("training", "processing", "transform"):
        actions = jobs[("caller", f"arn:aws:sagemaker:us-east-1:123456789012:{kind}-job/*", ())]
        assert "sagemaker:AddTags" in actions
        assert len([a for a in actions if a.startswith("sagemaker:Create")]) == 1
    passing = (("iam:PassedToService", "sagemaker.amazonaws.com"),)
    assert jobs[("caller", FIELDS["role_arn"], passing)] == ("iam:PassRole",)


def test_the_registry_is_checked_in_its_own_region_bucket_and_model_group():
    registry = asked("registry")
    group = "arn:aws:sagemaker:eu-west-1:123456789012:model-package-group/qsar"
    package = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/qsar/*"

    assert set(registry[("caller", group, ())]) == {
        "sagemaker:DescribeModelPackageGroup",
        "sagemaker:CreateModelPackageGroup",
        "sagemaker:CreateModelPackage",
    }
    assert set(registry[("caller", package, ())]) >= {
        "sagemaker:DescribeModelPackage",
        "sagemaker:UpdateModelPackage",
        "sagemaker:DeleteModelPackage",
    }
    assert registry[("caller", "*", ())] == ("sagemaker:ListModelPackages",)
    listing = ("caller", "arn:aws:s3:::flywheel-registry", (("s3:prefix", "registry/"),))
    assert registry[listing] == ("s3:ListBucket",)
    assert "s3:PutObject" in registry[("caller", "arn:aws:s3:::flywheel-registry/registry/*", ())]


def test_endpoint_calls_are_asked_on_the_endpoint_and_its_configs():
    endpoint = asked("endpoint")
    named = ("caller", "arn:aws:sagemaker:us-east-1:123456789012:endpoint/qsar-prod", ())
    configs = ("caller", "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/*", ())

    assert set(endpoint[named]) == {
        "sagemaker:CreateEndpoint",
        "sagemaker:DescribeEndpoint",
        "sagemaker:UpdateEndpoint",
    }
    assert set(endpoint[configs]) == {
        "sagemaker:CreateEndpointConfig",
        "sagemaker:DescribeEndpointConfig",
        "sagemaker:CreateEndpoint",
        "sagemaker:UpdateEndpoint",
    }
    assert not any(who == "execution_role" for who, _, _ in endpoint)  # no alarms, no rollback


def test_rollback_alarms_are_asked_of_the_execution_role_one_alarm_each():
    rollback = asked("endpoint", "rollback")
    alarms = {key: actions for key, actions in rollback.items() if key[0] == "execution_role"}

    assert alarms == {
        ("execution_role", f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}", ()): (
            "cloudwatch:DescribeAlarms",
        )
        for name in ("qsar-5xx", "qsar-latency")
    }


def test_the_checks_own_calls_are_never_simulated():
    everything = asked("jobs", "registry", "endpoint", "rollback", "metrics")
    actions = {action for asked_actions in everything.values() for action in asked_actions}

    assert not actions & {"iam:GetRole", "iam:SimulatePrincipalPolicy", "sts:GetCallerIdentity"}
