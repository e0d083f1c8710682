"""The deployment pipeline: serve one registered model version on one SageMaker endpoint.

One task, the public ``deploy_endpoint`` component: create the endpoint, or update it blue/green
with the traffic shifting and auto-rollback alarms given. The ModelDeployment operator launches
it once per stage rollout; a user may run it by hand, or compose the component in a pipeline of
their own.
"""

from kfp import dsl

from flywheel.components import deploy_endpoint


@dsl.pipeline(
    name="flywheel-deployment",
    description="Deploy a registered model package to a SageMaker endpoint, blue/green.",
)
def deployment_pipeline(
    compute_config: dict,
    model_package_arn: str,
    endpoint_name: str,
    instance_type: str = "ml.m5.large",
    instance_count: int = 1,
    rollback_alarms: list = [],  # noqa: B006 - KFP pipeline defaults are compiled, never mutated
    traffic_routing: dict = {},  # noqa: B006
):
    deploy_endpoint(
        compute_config=compute_config,
        model_package_arn=model_package_arn,
        endpoint_name=endpoint_name,
        instance_type=instance_type,
        instance_count=instance_count,
        rollback_alarms=rollback_alarms,
        traffic_routing=traffic_routing,
    ).set_caching_options(False)
