"""The CRD rejects bad RetrainPolicies before they are stored: OpenAPI schema, then CEL rules.

The schema is checked with jsonschema and the ``x-kubernetes-validations`` rules with cel-python,
both straight from the manifest the cluster gets. The operator's own parsing must agree.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import yaml

from flywheel.operators.policy import InvalidPolicy, parse_policy

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "manifests" / "crds" / "retrainpolicies.flywheel.dev.yaml"
SAMPLE = ROOT / "manifests" / "policies" / "retrainpolicy-sample.yaml"
SCHEMA = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
CEL = celpy.Environment()


def schema_errors(obj: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(obj)]


def _walk(schema: dict[str, Any], value: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(path, rule, message) for every CEL rule that applies to a value present in ``value``."""
    for rule in schema.get("x-kubernetes-validations", []):
        program = CEL.program(CEL.compile(rule["rule"]))
        try:
            result = program.evaluate({"self": celpy.json_to_cel(value)})
        except celpy.CELEvalError as exc:
            result = exc
        # A rule that errors rejects the object on the API server too.
        if isinstance(result, celpy.CELEvalError) or not bool(result):
            yield path + rule.get("fieldPath", ""), rule["rule"], rule.get("message")
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                yield from _walk(sub, value[key], f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            yield from _walk(schema["items"], item, f"{path}[{i}]")


def cel_errors(obj: dict[str, Any]) -> list[str]:
    return [f"{path}: {message}" for path, _, message in _walk(SCHEMA, obj, "")]


def sample() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(SAMPLE.read_text()))


def test_the_sample_policy_is_valid_for_the_crd_and_the_operator() -> None:
    policy = sample()
    assert schema_errors(policy) == []
    assert cel_errors(policy) == []
    assert len(parse_policy(policy["spec"]).triggers) == 4


def test_every_cel_rule_compiles() -> None:
    rules = [r for _, r, _ in _walk_all(SCHEMA)]
    assert len(rules) >= 6
    for rule in rules:
        CEL.compile(rule)


def _walk_all(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, str, str]]:
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule["rule"], rule.get("message", "")
    for key, sub in schema.get("properties", {}).items():
        yield from _walk_all(sub, f"{path}.{key}")
    if "items" in schema:
        yield from _walk_all(schema["items"], f"{path}[]")


def _set(obj: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    if isinstance(obj, list):
        obj[int(leaf)] = value
    else:
        obj[leaf] = value


# (what is wrong, where to change the sample, the new value, the field the error must name,
#  which layer catches it, the field the operator's own parser names)
BAD_SPECS = [
    (
        "malformed cron",
        "spec.triggers.0.schedule.cron",
        "every night",
        "spec.triggers[0].schedule.cron",
        "schema",
        "spec.triggers[0].schedule.cron",
    ),
    (
        "cron with six fields",
        "spec.triggers.0.schedule.cron",
        "0 0 3 * * *",
        "spec.triggers[0].schedule.cron",
        "schema",
        "spec.triggers[0].schedule.cron",
    ),
    (
        "malformed time zone",
        "spec.triggers.0.schedule.timeZone",
        "Berlin Time",
        "spec.triggers[0].schedule.timeZone",
        "schema",
        "spec.triggers[0].schedule.timeZone",
    ),
    (
        "threshold not a number",
        "spec.triggers.1.metric.threshold",
        "high",
        "spec.triggers[1].metric.threshold",
        "schema",
        "spec.triggers[1].metric.threshold",
    ),
    (
        "unknown concurrency policy",
        "spec.concurrencyPolicy",
        "Sometimes",
        "spec.concurrencyPolicy",
        "schema",
        "spec.concurrencyPolicy",
    ),
    (
        "datapointsToAlarm above evaluationPeriods",
        "spec.triggers.1.metric.datapointsToAlarm",
        4,
        "spec.triggers[1].metric.datapointsToAlarm",
        "cel",
        "spec.triggers[1].metric.datapointsToAlarm",
    ),
    (
        "a CloudWatch period CloudWatch does not store",
        "spec.triggers.1.metric.cloudWatch.periodSeconds",
        45,
        "spec.triggers[1].metric.cloudWatch.periodSeconds",
        "cel",
        "spec.triggers[1].metric.cloudWatch.periodSeconds",
    ),
    (
        "clearThreshold on the breaching side",
        "spec.triggers.1.metric.clearThreshold",
        0.6,
        "spec.triggers[1].metric.clearThreshold",
        "cel",
        "spec.triggers[1].metric.clearThreshold",
    ),
    (
        "a cooldown that overflows the clock",
        "spec.cooldown.afterSuccessSeconds",
        10**12,
        "spec.cooldown.afterSuccessSeconds",
        "schema",
        "spec.cooldown.afterSuccessSeconds",
    ),
    (
        "a backoff that overflows the clock",
        "spec.backoff.maxSeconds",
        10**12,
        "spec.backoff.maxSeconds",
        "schema",
        "spec.backoff.maxSeconds",
    ),
    (
        "a bucket name S3 refuses",
        "spec.triggers.2.dataArrival.bucket",
        "Feature_Lake",
        "spec.triggers[2].dataArrival.bucket",
        "schema",
        "spec.triggers[2].dataArrival.bucket",
    ),
    (
        "a nonce annotation that is no annotation key",
        "spec.triggers.3.manual",
        {"annotation": "run nonce!"},
        "spec.triggers[3].manual.annotation",
        "schema",
        "spec.triggers[3].manual.annotation",
    ),
    (
        "unknown deletion policy",
        "spec.deletionPolicy",
        "Delete",
        "spec.deletionPolicy",
        "schema",
        "spec.deletionPolicy",
    ),
    (
        "duplicate trigger names",
        "spec.triggers.3.name",
        "nightly",
        "spec.triggers",
        "cel",
        "spec.triggers[3].name",
    ),
]


@pytest.mark.parametrize(
    ("path", "value", "field", "layer", "parser_field"),
    [case[1:] for case in BAD_SPECS],
    ids=[case[0] for case in BAD_SPECS],
)
def test_a_bad_spec_is_rejected_naming_the_field(
    path: str, value: Any, field: str, layer: str, parser_field: str
) -> None:
    policy = sample()
    _set(policy, path, value)
    errors = schema_errors(policy) if layer == "schema" else cel_errors(policy)
    assert any(e.startswith(f"$.{field}") or e.startswith(f".{field}") for e in errors), errors
    with pytest.raises(InvalidPolicy) as raised:
        parse_policy(policy["spec"])
    assert parser_field in [e.field for e in raised.value.errors]


def test_a_trigger_with_two_kinds_is_rejected_by_cel() -> None:
    policy = sample()
    policy["spec"]["triggers"][3]["schedule"] = {"cron": "0 * * * *"}
    assert cel_errors(policy) == [
        ".spec.triggers[3]: a trigger sets exactly one of schedule, metric, dataArrival and manual"
    ]


def test_a_pipeline_needs_exactly_one_reference() -> None:
    policy = sample()
    policy["spec"]["pipeline"]["pipelineVersionRef"] = "train-v3"
    assert cel_errors(policy) == [
        ".spec.pipeline: set exactly one of pipeline.name and pipeline.pipelineVersionRef"
    ]


def test_a_time_zone_the_schema_allows_but_that_does_not_exist_is_caught_by_the_operator() -> None:
    policy = sample()
    policy["spec"]["triggers"][0]["schedule"]["timeZone"] = "Mars/Olympus_Mons"
    assert schema_errors(policy) == []
    with pytest.raises(InvalidPolicy, match=r"spec.triggers\[0\].schedule.timeZone"):
        parse_policy(policy["spec"])


def test_a_cron_that_never_matches_is_caught_by_the_operator() -> None:
    policy = sample()
    policy["spec"]["triggers"][0]["schedule"]["cron"] = "0 0 30 2 *"
    assert schema_errors(policy) == []
    with pytest.raises(InvalidPolicy, match=r"spec.triggers\[0\].schedule.cron: .* never matches"):
        parse_policy(policy["spec"])


def test_an_unknown_metric_field_is_refused_by_the_operator() -> None:
    # The API server prunes (or, with strict field validation, refuses) unknown fields; the
    # emulator and older clusters keep them, and a misspelt hysteresis must not pass silently.
    policy = sample()
    policy["spec"]["triggers"][1]["metric"]["hysteresis"] = {"band": 0.1}
    with pytest.raises(
        InvalidPolicy, match=r"spec.triggers\[1\].metric: unknown field.*hysteresis"
    ):
        parse_policy(policy["spec"])
