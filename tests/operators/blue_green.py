"""SageMaker's UpdateEndpoint on moto, which lacks it: a blue/green update with auto-rollback.

The rules are SageMaker's, as far as a caller can see them: the endpoint must exist and be
InService, the new config must exist; the update replaces the serving config, unless one of the
update's ``AutoRollbackConfiguration`` alarms fires during the bake, and then the old config goes
on serving, the endpoint is InService again and ``FailureReason`` says why. Which updates meet an
alarm is the test's choice (``Updates.alarm_on``: model package ARNs whose fleet trips it); an
update without rollback alarms is never rolled back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from moto.core.utils import utcnow
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.responses import SageMakerResponse


@dataclass
class Updates:
    alarm_on: set[str] = field(default_factory=set)  # model package ARNs whose update trips
    requests: list[dict[str, Any]] = field(default_factory=list)

    def install(self, monkeypatch: Any) -> None:
        updates = self

        def update_endpoint(response: SageMakerResponse) -> Any:
            from moto.core.responses import ActionResult

            params = {
                key: response._get_param(key)
                for key in ("EndpointName", "EndpointConfigName", "DeploymentConfig")
            }
            updates.requests.append(params)
            return ActionResult(updates._apply(response.sagemaker_backend, params))

        monkeypatch.setattr(SageMakerResponse, "update_endpoint", update_endpoint, raising=False)

    def _apply(self, backend: Any, params: dict[str, Any]) -> dict[str, str]:
        endpoint = backend.endpoints.get(params["EndpointName"])
        if endpoint is None:
            raise ValidationError(message=f"Could not find endpoint {params['EndpointName']}.")
        if endpoint.endpoint_status != "InService":
            raise ValidationError(message=f"Cannot update in-progress endpoint {endpoint.arn}.")
        config = backend.endpoint_configs.get(params["EndpointConfigName"])
        if config is None:
            raise ValidationError(message="Could not find endpoint configuration.")
        model = backend._models[config.production_variants[0]["ModelName"]]
        packages = {
            c.get("ModelPackageName") for c in [model.primary_container or {}, *model.containers]
        }
        alarms = (
            (params.get("DeploymentConfig") or {}).get("AutoRollbackConfiguration") or {}
        ).get("Alarms") or []
        endpoint.last_modified_time = utcnow()
        if alarms and packages & self.alarm_on:
            endpoint.failure_reason = (
                f"Alarm {alarms[0]['AlarmName']} went into ALARM during the update; "
                "the endpoint was rolled back to its previous configuration"
            )
        else:
            endpoint.endpoint_config_name = params["EndpointConfigName"]
            endpoint.failure_reason = None
        return {"EndpointArn": endpoint.arn}
