"""Deploy a model to a real-time endpoint: a new endpoint config, then create or blue/green update.

The old endpoint config is never changed or deleted, so if the update fails (or an alarm rolls
it back) SageMaker keeps serving the old fleet; the step fails with the reason and touches
nothing else. Endpoint configs are named from a digest of their request, so a retried deploy
finds its own config and, if the endpoint already uses it, only waits for InService. While a
change is in flight (``Updating``), a deploy waits for it to settle, then applies its own or
reattaches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from flywheel.components.compute.backend import LogSink
from flywheel.components.compute.sagemaker import naming
from flywheel.components.compute.sagemaker.clients import AwsClients, console_url
from flywheel.components.compute.sagemaker.errors import is_not_found
from flywheel.components.compute.sagemaker.model import ensure_model, model_request
from flywheel.components.compute.sagemaker.remote_runner import Watch
from flywheel.components.compute.sagemaker.specs import SageMakerConfig, check_instance_type
from flywheel.components.compute.sagemaker.validation import check_request, check_value
from flywheel.components.errors import InvalidSpecError, JobFailedError

_SETTLING = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})


@dataclass(frozen=True)
class EndpointSpec:
    """One endpoint serving one model on one variant; alarms turn on auto-rollback."""

    endpoint_name: str
    model_name: str
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    rollback_alarms: tuple[str, ...] = ()
    wait_interval_seconds: int = 300
    termination_wait_seconds: int = 300
    traffic_type: str = "ALL_AT_ONCE"  # ALL_AT_ONCE | CANARY | LINEAR
    step: tuple[str, int] | None = None  # CANARY's canary or LINEAR's step: (size type, value)

    def __post_init__(self) -> None:
        naming.validate_name("endpoint_name", self.endpoint_name)
        naming.validate_name("model_name", self.model_name)
        check_instance_type("instance_type", self.instance_type, "endpoint")
        if self.rollback_alarms:
            check_value(
                "sagemaker",
                "AlarmList",
                [{"AlarmName": a} for a in self.rollback_alarms],
                "rollback_alarms",
            )
        check_value("sagemaker", "BlueGreenUpdatePolicy", _blue_green(self), "traffic_routing")
        if (self.step is None) != (self.traffic_type == "ALL_AT_ONCE"):
            raise InvalidSpecError(
                "traffic_routing", f"a {self.traffic_type} shift needs a size, ALL_AT_ONCE none"
            )
        if self.step is not None and self.step[0] == "CAPACITY_PERCENT" and self.step[1] > 100:
            raise InvalidSpecError(
                "traffic_routing", f"a CAPACITY_PERCENT size is at most 100, got {self.step[1]}"
            )


# The traffic_routing key that holds each shift type's size.
_SIZE_KEYS = {"CANARY": "canarySize", "LINEAR": "linearStepSize"}


def traffic_settings(routing: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`EndpointSpec` fields from a ``traffic_routing`` mapping (``type``,
    ``canarySize``/``linearStepSize`` as ``{type, value}``, ``waitIntervalSeconds``,
    ``terminationWaitSeconds``), the ModelDeployment resource's ``trafficShifting``."""
    allowed = {"type", "waitIntervalSeconds", "terminationWaitSeconds", *_SIZE_KEYS.values()}
    unknown = sorted(set(routing) - allowed)
    if unknown:
        raise InvalidSpecError(
            "traffic_routing", f"unknown keys {unknown}; allowed: {sorted(allowed)}"
        )
    kind = routing.get("type", "ALL_AT_ONCE")
    size = routing.get(_SIZE_KEYS.get(kind, ""))
    return {
        "traffic_type": kind,
        "step": (size["type"], int(size["value"])) if size else None,
        "wait_interval_seconds": int(routing.get("waitIntervalSeconds", 300)),
        "termination_wait_seconds": int(routing.get("terminationWaitSeconds", 300)),
    }


def _blue_green(spec: EndpointSpec) -> dict[str, Any]:
    routing: dict[str, Any] = {
        "Type": spec.traffic_type,
        "WaitIntervalInSeconds": spec.wait_interval_seconds,
    }
    if spec.step is not None:
        key = "CanarySize" if spec.traffic_type == "CANARY" else "LinearStepSize"
        routing[key] = {"Type": spec.step[0], "Value": spec.step[1]}
    return {
        "TrafficRoutingConfiguration": routing,
        "TerminationWaitInSeconds": spec.termination_wait_seconds,
    }


def endpoint_config_request(spec: EndpointSpec) -> dict[str, Any]:
    request: dict[str, Any] = {
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "ModelName": spec.model_name,
                "InstanceType": spec.instance_type,
                "InitialInstanceCount": spec.instance_count,
                "InitialVariantWeight": 1.0,
            }
        ]
    }
    name = naming.resource_name(spec.endpoint_name, "config", request)
    return dict(
        check_request("sagemaker", "CreateEndpointConfig", {"EndpointConfigName": name, **request})
    )


def deployment_config(spec: EndpointSpec) -> dict[str, Any]:
    """Blue/green: all at once, a canary, or linear steps, each after a bake time; with alarms,
    SageMaker rolls back on any of them."""
    config: dict[str, Any] = {"BlueGreenUpdatePolicy": _blue_green(spec)}
    if spec.rollback_alarms:
        config["AutoRollbackConfiguration"] = {
            "Alarms": [{"AlarmName": alarm} for alarm in spec.rollback_alarms]
        }
    return config


def _describe_endpoint(clients: AwsClients, name: str) -> dict[str, Any] | None:
    try:
        return clients.sagemaker.describe_endpoint(EndpointName=name)
    except ClientError as error:
        if is_not_found(error):
            return None
        raise


def _wait_settled(
    clients: AwsClients, spec: EndpointSpec, watch: Watch, log: LogSink
) -> dict[str, Any]:
    """Describe the endpoint until no change is in flight; its description then."""
    url = console_url(clients.region, "endpoints", spec.endpoint_name)
    started = watch.clock.now()
    status = None
    while True:
        description = clients.sagemaker.describe_endpoint(EndpointName=spec.endpoint_name)
        if description["EndpointStatus"] != status:
            status = description["EndpointStatus"]
            log(f"[{spec.endpoint_name}] {status}  {url}")
        if status not in _SETTLING:
            return description
        age = watch.clock.now() - started
        if age > watch.deadline_seconds:
            raise JobFailedError(spec.endpoint_name, f"still {status} after {age:.0f}s")
        watch.clock.sleep(watch.schedule.interval(age))


def _wait_in_service(
    clients: AwsClients, spec: EndpointSpec, config_name: str, watch: Watch, log: LogSink
) -> dict[str, Any]:
    description = _wait_settled(clients, spec, watch, log)
    status = description["EndpointStatus"]
    reason = description.get("FailureReason") or f"endpoint is {status}"
    if status != "InService":
        raise JobFailedError(spec.endpoint_name, reason)
    if description.get("EndpointConfigName") != config_name:
        raise JobFailedError(
            spec.endpoint_name,
            f"the update to {config_name} was rolled back ({reason}); "
            f"{description.get('EndpointConfigName')} is still serving",
        )
    return description


def deploy(
    clients: AwsClients, spec: EndpointSpec, *, log: LogSink = print, watch: Watch | None = None
) -> Mapping[str, Any]:
    """Serve ``spec.model_name`` on ``spec.endpoint_name``; the endpoint's description once InService."""
    watch = watch or Watch()
    config = endpoint_config_request(spec)
    config_name = config["EndpointConfigName"]
    try:
        clients.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    except ClientError as error:
        if not is_not_found(error):
            raise
        clients.sagemaker.create_endpoint_config(**config)
        log(f"[{config_name}] created endpoint config for model {spec.model_name}")
    current = _describe_endpoint(clients, spec.endpoint_name)
    if current is not None and current["EndpointStatus"] in _SETTLING:
        # A change is in flight (often this deploy's own, from an attempt that was cut short):
        # SageMaker refuses another until it settles, and then it may already be ours.
        log(f"[{spec.endpoint_name}] is {current['EndpointStatus']}: waiting for it to settle")
        current = _wait_settled(clients, spec, watch, log)
    if current is None:
        clients.sagemaker.create_endpoint(
            EndpointName=spec.endpoint_name, EndpointConfigName=config_name
        )
        log(f"[{spec.endpoint_name}] creating endpoint with {config_name}")
    elif current.get("EndpointConfigName") == config_name:
        log(f"[{spec.endpoint_name}] already on {config_name} ({current['EndpointStatus']})")
    else:
        clients.sagemaker.update_endpoint(
            EndpointName=spec.endpoint_name,
            EndpointConfigName=config_name,
            DeploymentConfig=deployment_config(spec),
        )
        log(
            f"[{spec.endpoint_name}] blue/green update from {current.get('EndpointConfigName')} "
            f"to {config_name}"
        )
    return _wait_in_service(clients, spec, config_name, watch, log)


def deploy_model_package(
    clients: AwsClients,
    config: SageMakerConfig,
    model_package_arn: str,
    *,
    endpoint_name: str,
    instance_type: str = "ml.m5.large",
    instance_count: int = 1,
    rollback_alarms: tuple[str, ...] = (),
    traffic_routing: Mapping[str, Any] | None = None,
    log: LogSink = print,
    watch: Watch | None = None,
) -> Mapping[str, Any]:
    """Serve a registered model package: CreateModel from the registry entry, then :func:`deploy`.

    The model's name is a digest of its request, so deploying the same package twice reuses it.
    Everything is checked before the first call.
    """
    naming.validate_name("endpoint_name", endpoint_name)
    model = model_request(endpoint_name, config, model_package_arn=model_package_arn)
    spec = EndpointSpec(
        endpoint_name=endpoint_name,
        model_name=model["ModelName"],
        instance_type=instance_type,
        instance_count=instance_count,
        rollback_alarms=rollback_alarms,
        **traffic_settings(traffic_routing or {}),
    )
    ensure_model(clients, model, log)
    return deploy(clients, spec, log=log, watch=watch)
