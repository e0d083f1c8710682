"""Endpoint deploys: create on moto; blue/green update and a rolled-back update on the Stubber."""

from __future__ import annotations

import boto3
import pytest

from flywheel.components.compute.sagemaker import AwsClients, Watch
from flywheel.components.compute.sagemaker.endpoint import (
    EndpointSpec,
    deploy,
    endpoint_config_request,
)
from flywheel.components.errors import InvalidSpecError, JobFailedError

from .conftest import NOW, ROLE
from .moto_sagemaker import moto_sagemaker

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def test_new_endpoint_is_created_and_waited_for_on_moto(monkeypatch, clock):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with moto_sagemaker(monkeypatch) as endpoint_url:
        clients = AwsClients.connect("us-east-1", endpoint_url)
        clients.sagemaker.create_model(
            ModelName="qsar-model",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://bkt/model.tar.gz"},
        )
        spec = EndpointSpec(endpoint_name="qsar", model_name="qsar-model")
        lines: list[str] = []

        first = deploy(clients, spec, log=lines.append, watch=Watch(clock=clock))
        again = deploy(clients, spec, log=lines.append, watch=Watch(clock=clock))

        assert first["EndpointStatus"] == again["EndpointStatus"] == "InService"
        sagemaker = boto3.client("sagemaker", endpoint_url=endpoint_url, region_name="us-east-1")
        assert len(sagemaker.list_endpoint_configs()["EndpointConfigs"]) == 1
        assert any("already on" in line for line in lines)


def _endpoint(status: str, config: str, **extra: object) -> dict:
    return {
        "EndpointName": "qsar",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/qsar",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": NOW,
        "LastModifiedTime": NOW,
        **extra,
    }


def _create_new_config(stubbed, spec: EndpointSpec) -> str:
    """The deploy finds no config of its content's name and creates it; returns the name."""
    config = endpoint_config_request(spec)
    name = config["EndpointConfigName"]
    stubbed.sagemaker.add_client_error(
        "describe_endpoint_config",
        service_error_code="ValidationException",
        service_message="Could not find endpoint configuration",
    )
    stubbed.sagemaker.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:1:ec/{name}"},
        config,
    )
    return name


def _update_to_new_config(stubbed, spec: EndpointSpec) -> str:
    name = _create_new_config(stubbed, spec)
    stubbed.sagemaker.add_response("describe_endpoint", _endpoint("InService", "old-config"))
    stubbed.sagemaker.add_response(
        "update_endpoint",
        {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/qsar"},
        {
            "EndpointName": "qsar",
            "EndpointConfigName": name,
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "ALL_AT_ONCE",
                        "WaitIntervalInSeconds": 300,
                    },
                    "TerminationWaitInSeconds": 300,
                },
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "qsar-5xx"}]},
            },
        },
    )
    stubbed.sagemaker.add_response("describe_endpoint", _endpoint("Updating", "old-config"))
    return name


def test_existing_endpoint_gets_a_blue_green_update_with_alarm_rollback(stubbed, clock):
    spec = EndpointSpec(
        endpoint_name="qsar", model_name="qsar-model-2", rollback_alarms=("qsar-5xx",)
    )
    name = _update_to_new_config(stubbed, spec)
    stubbed.sagemaker.add_response("describe_endpoint", _endpoint("InService", name))

    result = deploy(stubbed.clients, spec, log=lambda _: None, watch=Watch(clock=clock))

    assert result["EndpointConfigName"] == name
    stubbed.verify()


def test_rolled_back_update_fails_and_leaves_the_old_config_serving(stubbed, clock):
    spec = EndpointSpec(
        endpoint_name="qsar", model_name="qsar-model-2", rollback_alarms=("qsar-5xx",)
    )
    _update_to_new_config(stubbed, spec)
    stubbed.sagemaker.add_response(
        "describe_endpoint",
        _endpoint("InService", "old-config", FailureReason="Alarm qsar-5xx went off"),
    )

    with pytest.raises(JobFailedError, match=r"rolled back.*old-config is still serving"):
        deploy(stubbed.clients, spec, log=lambda _: None, watch=Watch(clock=clock))
    stubbed.verify()


def test_retried_deploy_waits_for_the_update_in_flight_then_reattaches(stubbed, clock):
    spec = EndpointSpec(endpoint_name="qsar", model_name="qsar-model-2")
    name = endpoint_config_request(spec)["EndpointConfigName"]
    stubbed.sagemaker.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": name,
            "EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:1:ec/{name}",
            "ProductionVariants": [{"VariantName": "AllTraffic"}],
            "CreationTime": NOW,
        },
    )
    # The first attempt's update is in flight: the old config serves until it completes.
    stubbed.sagemaker.add_response("describe_endpoint", _endpoint("Updating", "old-config"))
    stubbed.sagemaker.add_response("describe_endpoint", _endpoint("Updating", "old-config"))
    stubbed.sagemaker.add_response("describe_endpoint", _endpoint("InService", name))
    stubbed.sagemaker.add_response("describe_endpoint", _endpoint("InService", name))
    lines: list[str] = []

    result = deploy(stubbed.clients, spec, log=lines.append, watch=Watch(clock=clock))

    assert result["EndpointConfigName"] == name
    assert any("waiting for it to settle" in line for line in lines)
    assert any("already on" in line for line in lines)
    stubbed.verify()


def test_deploy_applies_its_update_once_another_change_has_settled(stubbed, clock):
    spec = EndpointSpec(endpoint_name="qsar", model_name="qsar-model-2")
    name = _create_new_config(stubbed, spec)
    stubbed.sagemaker.add_response("describe_endpoint", _endpoint("Updating", "old-config"))
    stubbed.sagemaker.add_response("describe_endpoint", _endpoint("InService", "other-config"))
    stubbed.sagemaker.add_response(
        "update_endpoint", {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/qsar"}
    )
    stubbed.sagemaker.add_response("describe_endpoint", _endpoint("InService", name))

    result = deploy(stubbed.clients, spec, log=lambda _: None, watch=Watch(clock=clock))

    assert result["EndpointConfigName"] == name
    stubbed.verify()


def test_canary_and_linear_shifts_build_sagemakers_deployment_config():
    from flywheel.components.compute.sagemaker.endpoint import deployment_config, traffic_settings
    from flywheel.components.compute.sagemaker.validation import check_value

    canary = EndpointSpec(
        endpoint_name="qsar",
        model_name="qsar-model-2",
        **traffic_settings(
            {
                "type": "CANARY",
                "canarySize": {"type": "CAPACITY_PERCENT", "value": 10},
                "waitIntervalSeconds": 600,
            }
        ),
    )
    routing = deployment_config(canary)["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {
        "Type": "CANARY",
        "WaitIntervalInSeconds": 600,
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
    }
    linear = EndpointSpec(
        endpoint_name="qsar",
        model_name="qsar-model-2",
        **traffic_settings(
            {"type": "LINEAR", "linearStepSize": {"type": "INSTANCE_COUNT", "value": 1}}
        ),
    )
    config = deployment_config(linear)
    assert config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["LinearStepSize"] == {
        "Type": "INSTANCE_COUNT",
        "Value": 1,
    }
    check_value("sagemaker", "DeploymentConfig", config, "deployment_config")


@pytest.mark.parametrize(
    "routing,message",
    [
        (
            {"type": "CANARY", "canarySize": {"type": "CAPACITY_PERCENT", "value": 101}},
            "at most 100",
        ),
        ({"type": "CANARY"}, "needs a size"),
        ({"type": "ALL_AT_ONCE", "waitIntervalSeconds": 3601}, "WaitIntervalInSeconds"),
        ({"type": "SOMETIMES", "canarySize": {"type": "CAPACITY_PERCENT", "value": 1}}, "Type"),
        ({"typo": 1}, "unknown keys"),
    ],
)
def test_bad_traffic_routing_is_refused_before_any_call(routing, message):
    from flywheel.components.compute.sagemaker.endpoint import traffic_settings

    with pytest.raises(InvalidSpecError, match=message):
        EndpointSpec(endpoint_name="qsar", model_name="m", **traffic_settings(routing))
