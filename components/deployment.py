"""KFP components that exist only for SageMaker: deploy a registered model to an endpoint.

Like every Flywheel component, this one only declares inputs and outputs; the work is in
``components.compute.sagemaker.endpoint``. The endpoint is an output artifact whose metadata carries its
ARN, config and console link, so the Kubeflow UI shows where the model now serves.
"""

from kfp import dsl
from kfp.dsl import Artifact, Output

from flywheel.components.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def deploy_endpoint(
    compute_config: dict,
    model_package_arn: str,
    endpoint_name: str,
    endpoint: Output[Artifact],
    instance_type: str = "ml.m5.large",
    instance_count: int = 1,
    rollback_alarms: list = [],  # noqa: B006 - KFP defaults are compiled, never mutated
    traffic_routing: dict = {},  # noqa: B006 - KFP defaults are compiled, never mutated
):
    """Deploy a registered model package to a SageMaker endpoint, and wait until it serves.

    A new endpoint is created; an existing one is updated blue/green, so traffic moves only once
    the new fleet is healthy, and rolls back if a ``rollback_alarms`` alarm fires meanwhile. The
    same package deployed twice reuses its model. Every setting is checked before the first call.

    Args:
        compute_config: SageMaker settings (``role_arn``, ``s3_prefix``, ``region``...), as for
            ``compute="sagemaker"``.
        model_package_arn: The registered model package to serve.
        endpoint_name: The endpoint to create or update.
        instance_type: The instance type that serves.
        instance_count: How many instances serve.
        rollback_alarms: Names of CloudWatch alarms that roll the update back when they fire.
        traffic_routing: How an update shifts traffic: ``type`` (``ALL_AT_ONCE``, the default,
            ``CANARY`` or ``LINEAR``), ``canarySize`` or ``linearStepSize`` as ``{"type":
            "CAPACITY_PERCENT" | "INSTANCE_COUNT", "value": n}``, ``waitIntervalSeconds`` (the
            bake time between steps) and ``terminationWaitSeconds`` (both 0 to 3600, 300 by
            default); checked against SageMaker's DeploymentConfig.

    Returns:
        endpoint: The endpoint; metadata: endpoint_arn, endpoint_config, model_package_arn and
            a console link.
    """
    import json
    from pathlib import Path

    from flywheel.components.compute.sagemaker import AwsClients, SageMakerConfig
    from flywheel.components.compute.sagemaker.clients import console_url
    from flywheel.components.compute.sagemaker.endpoint import deploy_model_package
    from flywheel.components.steps.runtime import reported_step

    with reported_step("deploy-endpoint"):
        config = SageMakerConfig.from_mapping(compute_config)
        clients = AwsClients.connect(config.region, config.endpoint_url)
        described = deploy_model_package(
            clients,
            config,
            model_package_arn,
            endpoint_name=endpoint_name,
            instance_type=instance_type,
            instance_count=instance_count,
            rollback_alarms=tuple(rollback_alarms),
            traffic_routing=traffic_routing,
        )
    endpoint.metadata.update(
        {
            "endpoint_arn": described["EndpointArn"],
            "endpoint_config": described["EndpointConfigName"],
            "model_package_arn": model_package_arn,
            "console": console_url(clients.region, "endpoints", endpoint_name),
        }
    )
    Path(endpoint.path).write_text(json.dumps(dict(endpoint.metadata), indent=2))
