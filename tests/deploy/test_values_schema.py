"""values.schema.json refuses what would render an invalid object, naming the field.

List items are checked against Kubernetes' own schemas and ``policies[].spec`` against the CRD;
those parts are generated (tests/tools/render_values_schema.py), never copied by hand.
"""

from __future__ import annotations

import ast
import json
import re
import zoneinfo
from pathlib import Path

import celpy
import pytest
import yaml
from deploy_checks import MANIFESTS, helm_template, helm_template_error, of_kind, tool

POLICY_SPEC = {
    "pipeline": {"name": "flywheel-training"},
    "triggers": [{"name": "nightly", "schedule": {"cron": "0 3 * * *"}}],
}


def _policy(**spec: object) -> list[str]:
    return ["--set-json", f"policies={json.dumps([{'name': 'p', 'spec': spec}])}"]


def _json(key: str, value: object) -> list[str]:
    return ["--set-json", f"{key}={json.dumps(value)}"]


# Each value renders an object the API server (or the operator) would refuse; the regex names the
# field as helm reports it.
BAD_VALUES = {
    "image tag with a space": (_json("operator.image.tag", "1.0 beta"), r"/operator/image/tag"),
    "uppercase image repository": (
        _json("operator.image.repository", "ghcr.io/Flywheel/Runtime"),
        r"/operator/image/repository",
    ),
    "name override with uppercase and underscore": (
        _json("nameOverride", "Flywheel_X"),
        r"/nameOverride",
    ),
    "full name starting with a digit": (_json("fullnameOverride", "1fly"), r"/fullnameOverride"),
    "service account name with underscore": (
        _json("serviceAccount.name", "Bad_SA"),
        r"/serviceAccount/name",
    ),
    "label key with a space": (_json("commonLabels", {"bad key": "x"}), r"/commonLabels"),
    "label value with a space": (
        _json("commonLabels", {"team": "has spaces"}),
        r"/commonLabels/team",
    ),
    "annotation key with a bang": (
        _json("operator.podAnnotations", {"bad!": "x"}),
        r"/operator/podAnnotations",
    ),
    "node selector value starting with a dash": (
        _json("operator.nodeSelector", {"disk": "-ssd"}),
        r"/operator/nodeSelector/disk",
    ),
    "toleration with a misspelt field": (
        _json("operator.tolerations", [{"key": "gpu", "efect": "NoSchedule"}]),
        r"/operator/tolerations/0",
    ),
    "toleration seconds as text": (
        _json("operator.tolerations", [{"key": "gpu", "tolerationSeconds": "ten"}]),
        r"/operator/tolerations/0/tolerationSeconds",
    ),
    "affinity with a misspelt field": (
        _json("operator.affinity", {"nodeAfinity": {}}),
        r"/operator/affinity",
    ),
    "affinity term with a numeric topology key": (
        _json(
            "operator.affinity",
            {
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": 5}]
                }
            },
        ),
        r"/operator/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/0/topologyKey",
    ),
    "env var with a misspelt field": (
        _json("operator.extraEnv", [{"name": "A", "valu": "x"}]),
        r"/operator/extraEnv/0",
    ),
    "env var secret reference with a misspelt field": (
        _json(
            "operator.extraEnv",
            [{"name": "A", "valueFrom": {"secretKeyRef": {"key": "k", "nme": "s"}}}],
        ),
        r"/operator/extraEnv/0/valueFrom/secretKeyRef",
    ),
    "network policy peer with a misspelt field": (
        _json("networkPolicy.metricsFrom", [{"podSelektor": {}}]),
        r"/networkPolicy/metricsFrom/0",
    ),
    "network policy peer with a numeric cidr": (
        _json("networkPolicy.metricsFrom", [{"ipBlock": {"cidr": 10}}]),
        r"/networkPolicy/metricsFrom/0/ipBlock/cidr",
    ),
    "policy spec with an unknown field": (
        _policy(**POLICY_SPEC, paralelism=1),
        r"/policies/0/spec",
    ),
    "policy with a malformed cron": (
        _policy(
            pipeline={"name": "x"}, triggers=[{"name": "t", "schedule": {"cron": "every day"}}]
        ),
        r"/policies/0/spec/triggers/0/schedule/cron",
    ),
    "kfp endpoint without a host": (_json("kfp.endpoint", "http://"), r"/kfp/endpoint"),
    "service monitor label value with a space": (
        _json("metrics.serviceMonitor.labels", {"release": "prom etheus"}),
        r"/metrics/serviceMonitor/labels/release",
    ),
    "image pull secret with uppercase": (
        _json("operator.imagePullSecrets", [{"name": "Bad_Secret"}]),
        r"/operator/imagePullSecrets/0/name",
    ),
    "watched namespace with uppercase": (
        _json("operator.watchNamespaces", ["Team-A"]),
        r"/operator/watchNamespaces/0",
    ),
    "toleration with an unknown effect": (
        _json("operator.tolerations", [{"key": "gpu", "effect": "NoScheduling"}]),
        r"/operator/tolerations/0/effect",
    ),
    "toleration with an unknown operator": (
        _json("operator.tolerations", [{"key": "gpu", "operator": "Equals", "value": "x"}]),
        r"/operator/tolerations/0/operator",
    ),
    "negative cpu": (
        _json("operator.resources.requests.cpu", -1),
        r"/operator/resources/requests/cpu",
    ),
    "negative memory": (
        _json("operator.resources.limits.memory", -256),
        r"/operator/resources/limits/memory",
    ),
    "negative cpu as text": (
        _json("operator.resources.limits.cpu", "-1"),
        r"/operator/resources/limits/cpu",
    ),
    "quantity with two dots": (
        _json("operator.resources.requests.cpu", "1.2.3"),
        r"/operator/resources/requests/cpu",
    ),
    "quantity without digits": (
        _json("operator.resources.limits.memory", ".Gi"),
        r"/operator/resources/limits/memory",
    ),
    "kfp endpoint port above 65535": (
        _json("kfp.endpoint", "http://ml-pipeline.kubeflow:99999"),
        r"/kfp/endpoint",
    ),
    "empty env var name": (
        _json("operator.extraEnv", [{"name": "", "value": "x"}]),
        r"/operator/extraEnv/0/name",
    ),
    "env var name with '='": (
        _json("operator.extraEnv", [{"name": "A=B", "value": "x"}]),
        r"/operator/extraEnv/0/name",
    ),
    "common label that duplicates a selector label": (
        _json("commonLabels", {"app.kubernetes.io/name": "other"}),
        r"/commonLabels",
    ),
    "policy cron minute 61": (
        _policy(
            pipeline={"name": "x"}, triggers=[{"name": "t", "schedule": {"cron": "61 * * * *"}}]
        ),
        r"/policies/0/spec/triggers/0/schedule/cron",
    ),
    "policy cron of letters": (
        _policy(
            pipeline={"name": "x"}, triggers=[{"name": "t", "schedule": {"cron": "a b c d e"}}]
        ),
        r"/policies/0/spec/triggers/0/schedule/cron",
    ),
    "policy time zone that does not exist": (
        _policy(
            pipeline={"name": "x"},
            triggers=[{"name": "t", "schedule": {"cron": "0 3 * * *", "timeZone": "Mars/Olympus"}}],
        ),
        r"/policies/0/spec/triggers/0/schedule/timeZone",
    ),
}


@pytest.mark.parametrize("args,field", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_schema_refuses_a_bad_value_naming_its_field(args: list[str], field: str) -> None:
    error = helm_template_error(*args)
    assert re.search(rf"at '{field}'", error), error


GOOD_VALUES = {
    "kubernetes-shaped lists": [
        *_json(
            "operator.tolerations", [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
        ),
        *_json(
            "operator.extraEnv",
            [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        ),
        *_json(
            "networkPolicy.metricsFrom", [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}]
        ),
        *_json(
            "operator.affinity",
            {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]}
                        ]
                    }
                }
            },
        ),
    ],
    "names and labels": [
        *_json("nameOverride", "fly"),
        *_json("fullnameOverride", "fly-prod"),
        *_json("commonLabels", {"example.com/team": "ml_platform-1"}),
        *_json(
            "operator.image.repository",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/flywheel/runtime",
        ),
        *_json("operator.image.tag", "0.1.0-rc.1"),
    ],
    "a full policy": _policy(**POLICY_SPEC, concurrencyPolicy="Forbid", suspend=False),
    "quantities in every form": [
        *_json("operator.resources.requests", {"cpu": "250m", "memory": "1e8"}),
        *_json("operator.resources.limits", {"cpu": 0.5, "memory": "1Gi"}),
    ],
    "tolerations, env names and ports as Kubernetes takes them": [
        *_json(
            "operator.tolerations",
            [{"key": "a", "operator": "Equal", "value": "b", "effect": "NoExecute"}],
        ),
        *_json("operator.extraEnv", [{"name": "my.var-1", "value": "x"}, {"name": "_X"}]),
        *_json("kfp.endpoint", "https://kfp.example.com:65535/pipeline"),
    ],
    "crons and time zones the operator takes": _policy(
        pipeline={"name": "x"},
        triggers=[
            {
                "name": "a",
                "schedule": {"cron": "*/15 9-17 * * MON-FRI", "timeZone": "Europe/Berlin"},
            },
            {"name": "b", "schedule": {"cron": "0 0 L * ?", "timeZone": "America/Argentina/Salta"}},
            {"name": "c", "schedule": {"cron": "30 2 1,15 jan,jul 1#2", "timeZone": "UTC"}},
        ],
    ),
}


@pytest.mark.parametrize("args", GOOD_VALUES.values(), ids=GOOD_VALUES.keys())
def test_schema_accepts_what_kubernetes_accepts(args: list[str]) -> None:
    assert of_kind(helm_template(*args), "Deployment")


def test_values_schema_generated_parts_are_fresh() -> None:
    renderer = tool("render_values_schema")
    current = renderer.TARGET.read_text()
    assert current == renderer.render(current), (
        "helm/flywheel/values.schema.json is stale: run python tests/tools/render_values_schema.py"
    )


def test_policy_spec_schema_is_the_crds_and_list_items_are_kubernetes_own() -> None:
    renderer = tool("render_values_schema")
    schema = json.loads(renderer.TARGET.read_text())
    spec = schema["properties"]["policies"]["items"]["properties"]["spec"]
    assert (
        spec["properties"].keys()
        == renderer.crd_property("retrainpolicies.flywheel.dev.yaml#spec")["properties"].keys()
    )
    # Kubernetes' own schema, narrowed by the enums Kubernetes checks in code (effect, operator).
    toleration = schema["properties"]["operator"]["properties"]["tolerations"]["items"]["allOf"][0]
    assert toleration[renderer.MARKER] == "kubernetes:toleration-v1"
    assert toleration["additionalProperties"] is False
    # Only definitions the generated types reach, and each of them present.
    refs = set(re.findall(r'"\$ref": "#/\$defs/([^"]+)"', Path(renderer.TARGET).read_text()))
    assert refs <= set(schema["$defs"])


def test_the_time_zones_the_values_schema_takes_are_the_crds_and_exist() -> None:
    """One closed list, in the CRD's CEL rule and in the values schema; each one a zone the
    operator's zoneinfo loads, so nothing admitted is refused later."""
    renderer = tool("render_values_schema")
    schema = json.loads(renderer.TARGET.read_text())
    crd = yaml.safe_load((MANIFESTS / "crds" / "retrainpolicies.flywheel.dev.yaml").read_text())
    versions = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schedule = versions["properties"]["spec"]["properties"]["triggers"]["items"]["properties"]
    (rule,) = schedule["schedule"]["properties"]["timeZone"]["x-kubernetes-validations"]
    listed = ast.literal_eval(rule["rule"].removeprefix("self in "))
    assert listed == schema["$defs"]["timeZone"]["enum"]
    assert "Mars/Olympus" not in listed and {"UTC", "Europe/Berlin"} <= set(listed)
    assert set(listed) <= zoneinfo.available_timezones()


CRD_CASES = {
    "cron minute 61": ({"cron": "61 * * * *"}, "cron"),
    "cron of letters": ({"cron": "a b c d e"}, "cron"),
    "time zone that does not exist": (
        {"cron": "0 3 * * *", "timeZone": "Mars/Olympus"},
        "timeZone",
    ),
}


@pytest.mark.parametrize("schedule,field", CRD_CASES.values(), ids=CRD_CASES.keys())
def test_the_crd_refuses_bad_schedules_applied_without_helm(
    schedule: dict[str, str], field: str
) -> None:
    """kubectl apply of a RetrainPolicy: the API server's schema, then its CEL rules."""
    crd = yaml.safe_load((MANIFESTS / "crds" / "retrainpolicies.flywheel.dev.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    props = schema["properties"]["spec"]["properties"]["triggers"]["items"]["properties"]
    field_schema = props["schedule"]["properties"][field]
    value = schedule[field]
    pattern_ok = re.search(field_schema.get("pattern", ""), value) is not None
    cel = celpy.Environment()
    rules_ok = all(
        bool(cel.program(cel.compile(r["rule"])).evaluate({"self": celpy.json_to_cel(value)}))
        for r in field_schema.get("x-kubernetes-validations", [])
    )
    assert not (pattern_ok and rules_ok)
