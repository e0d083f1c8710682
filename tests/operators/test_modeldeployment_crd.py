"""The ModelDeployment CRD refuses bad specs in one line naming the field, as the operator does.

The schema is checked with jsonschema and the ``x-kubernetes-validations`` rules with cel-python,
straight from the manifest the cluster gets (the chart ships the same bytes); the operator's own
parser must refuse the same specs, naming the same field.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import celpy
import jsonschema
import pytest
import yaml

from flywheel.operators.deployment_spec import parse_deployment
from flywheel.operators.policy import InvalidPolicy

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "manifests" / "crds" / "modeldeployments.flywheel.dev.yaml"
SAMPLE = ROOT / "manifests" / "deployments" / "modeldeployment-sample.yaml"
VERSION = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]
CEL = celpy.Environment()


def schema_errors(obj: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(obj)]


def _rules(schema: dict[str, Any], value: Any, path: str) -> Iterator[str]:
    """``path: message`` for every CEL rule that refuses a value present in ``value``."""
    for rule in schema.get("x-kubernetes-validations", []):
        try:
            ok = bool(
                CEL.program(CEL.compile(rule["rule"])).evaluate({"self": celpy.json_to_cel(value)})
            )
        except celpy.CELEvalError:
            ok = False  # an erring rule refuses on the API server too
        if not ok:
            yield f"{path}{rule.get('fieldPath', '')}: {rule['message']}"
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                yield from _rules(sub, value[key], f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            yield from _rules(schema["items"], item, f"{path}[{i}]")


def cel_errors(obj: dict[str, Any]) -> list[str]:
    return list(_rules(SCHEMA, obj, "$"))


def sample() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(SAMPLE.read_text()))


def operator_errors(obj: dict[str, Any]) -> list[str]:
    try:
        parse_deployment(obj["spec"])
    except InvalidPolicy as exc:
        return [str(e) for e in exc.errors]
    return []


def test_the_sample_is_valid_for_the_crd_and_the_operator() -> None:
    obj = sample()
    assert schema_errors(obj) == []
    assert cel_errors(obj) == []
    deployment = parse_deployment(obj["spec"])
    assert [s.name for s in deployment.stages] == ["staging", "prod"]
    assert deployment.stages[1].traffic["canarySize"] == {"type": "CAPACITY_PERCENT", "value": 10}


def _with(change: str) -> dict[str, Any]:
    obj = sample()
    prod = obj["spec"]["stages"][1]
    if change == "unknown promoteFrom":
        prod["promoteFrom"] = "qa"
    elif change == "canary over 100%":
        prod["endpoint"]["trafficShifting"]["canarySize"]["value"] = 101
    elif change == "11 rollback alarms":
        prod["endpoint"]["rollbackAlarms"] = [f"alarm-{i}" for i in range(11)]
    elif change == "11 soak alarms":
        prod["soakAlarms"] = [f"alarm-{i}" for i in range(11)]
    elif change == "version and follow":
        prod["follow"] = "newestApproved"
    elif change == "canary without a size":
        del prod["endpoint"]["trafficShifting"]["canarySize"]
    elif change == "approval without promoteFrom":
        obj["spec"]["stages"][0]["requiresApproval"] = True
    return obj


# (the bad spec, the field each layer must name: CRD (schema or CEL), operator)
BAD = {
    "unknown promoteFrom": ("$.spec.stages", "spec.stages[1].promoteFrom"),
    "canary over 100%": (
        "$.spec.stages[1].endpoint.trafficShifting.canarySize.value",
        "spec.stages[1].endpoint.trafficShifting.canarySize.value",
    ),
    "11 rollback alarms": (
        "$.spec.stages[1].endpoint.rollbackAlarms",
        "spec.stages[1].endpoint.rollbackAlarms",
    ),
    "11 soak alarms": ("$.spec.stages[1].soakAlarms", "spec.stages[1].soakAlarms"),
    "version and follow": ("$.spec.stages[1]", "spec.stages[1]"),
    "canary without a size": (
        "$.spec.stages[1].endpoint.trafficShifting",
        "spec.stages[1].endpoint.trafficShifting.canarySize",
    ),
    "approval without promoteFrom": (
        "$.spec.stages[0].requiresApproval",
        "spec.stages[0].requiresApproval",
    ),
}


@pytest.mark.parametrize("change", BAD)
def test_a_bad_spec_is_refused_in_one_line_naming_the_field(change: str) -> None:
    crd_field, operator_field = BAD[change]
    obj = _with(change)
    refused = schema_errors(obj) + cel_errors(obj)
    assert len(refused) == 1, refused
    assert refused[0].startswith(f"{crd_field}:"), refused
    errors = operator_errors(obj)
    assert len(errors) == 1 and errors[0].startswith(f"{operator_field}:"), errors


def test_a_promotion_from_a_later_stage_is_refused_by_the_operator() -> None:
    obj = sample()
    obj["spec"]["stages"].reverse()  # prod first, promoting from staging listed after it
    assert operator_errors(obj) == [
        "spec.stages[0].promoteFrom: 'staging' is not a stage listed before 'prod' "
        "(earlier stages: none)"
    ]


def test_every_cel_rule_compiles() -> None:
    text = CRD.read_text()
    rules = [
        line.split("rule:", 1)[1].strip().strip('"')
        for line in text.splitlines()
        if "- rule:" in line
    ]
    assert len(rules) >= 10
    for rule in rules:
        CEL.compile(rule)


def test_endpoint_limits_are_sagemakers() -> None:
    """The CRD's limits are those of botocore's model for UpdateEndpoint and CreateEndpointConfig."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    routing = model.shape_for("TrafficRoutingConfig").members
    endpoint = SCHEMA["properties"]["spec"]["properties"]["stages"]["items"]["properties"][
        "endpoint"
    ]["properties"]
    shifting = endpoint["trafficShifting"]["properties"]
    assert shifting["type"]["enum"] == routing["Type"].enum
    wait = routing["WaitIntervalInSeconds"].metadata
    assert (
        shifting["waitIntervalSeconds"]["minimum"],
        shifting["waitIntervalSeconds"]["maximum"],
    ) == (
        wait["min"],
        wait["max"],
    )
    size = routing["CanarySize"].members
    assert sorted(shifting["canarySize"]["properties"]["type"]["enum"]) == sorted(size["Type"].enum)
    assert shifting["canarySize"]["properties"]["value"]["minimum"] == size["Value"].metadata["min"]
    alarms = model.shape_for("AutoRollbackConfig").members["Alarms"].metadata
    assert endpoint["rollbackAlarms"]["maxItems"] == alarms["max"]
    name = model.shape_for("EndpointName").metadata
    assert endpoint["name"]["maxLength"] == name["max"]
    assert endpoint["name"]["pattern"] == f"^{name['pattern']}$"
    count = model.shape_for("ProductionVariant").members["InitialInstanceCount"].metadata
    assert endpoint["instanceCount"]["minimum"] == count["min"]
    termination = model.shape_for("BlueGreenUpdatePolicy").members["TerminationWaitInSeconds"]
    assert shifting["terminationWaitSeconds"]["maximum"] == termination.metadata["max"]


def test_printer_columns_show_each_stage_and_readiness() -> None:
    columns = {c["name"]: c["jsonPath"] for c in VERSION["additionalPrinterColumns"]}
    assert columns["Stages"] == ".status.summary"
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
