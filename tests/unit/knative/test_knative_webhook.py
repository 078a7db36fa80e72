"""Knative's admission webhook: defaults and refusals worded as upstream's (field paths included)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from localcluster.knative import fielderrors as fe
from localcluster.knative import webhook
from localcluster.knative.config import AutoscalerConfig, DefaultsConfig

IMAGE = "ghcr.io/cloud-native-bookstore/workshop:latest"
CONFIG = webhook.WebhookConfig()


def service(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "echo", "namespace": "ns"},
        "spec": {"template": {"spec": {"containers": [{"image": IMAGE}]}}, **spec},
    }


def refusal(
    kind: str, obj: dict[str, Any], old: dict[str, Any] | None = None, config: webhook.WebhookConfig = CONFIG
) -> str:
    webhook.set_defaults(kind, obj, old, config)
    return fe.render(webhook.validate(kind, obj, old, config))


def test_defaults_of_a_service_template_and_traffic() -> None:
    obj = service()
    webhook.set_defaults("Service", obj, None, CONFIG)
    spec = obj["spec"]["template"]["spec"]
    assert spec["timeoutSeconds"] == 300 and spec["containerConcurrency"] == 0
    assert spec["enableServiceLinks"] is False
    (container,) = spec["containers"]
    assert container["name"] == "user-container"
    assert container["readinessProbe"] == {"tcpSocket": {}, "successThreshold": 1}
    assert obj["spec"]["traffic"] == [{"percent": 100, "latestRevision": True}]


def test_defaults_follow_config_defaults() -> None:
    config = webhook.WebhookConfig(defaults=DefaultsConfig.from_data({"revision-timeout-seconds": "30"}))
    obj = service()
    webhook.set_defaults("Service", obj, None, config)
    assert obj["spec"]["template"]["spec"]["timeoutSeconds"] == 30


def test_traffic_must_sum_to_100() -> None:
    assert refusal("Service", service(traffic=[{"latestRevision": True, "percent": 90}])) == (
        "Traffic targets sum to 90, want 100: spec.traffic"
    )
    assert webhook.denial(fe.generic("Traffic targets sum to 90, want 100", "spec.traffic")) == (
        'admission webhook "validation.webhook.serving.knative.dev" denied the request: '
        "validation failed: Traffic targets sum to 90, want 100: spec.traffic"
    )


def test_tags_must_be_dns_labels_and_unique() -> None:
    twice = service(traffic=[{"percent": 50, "tag": "a"}, {"revisionName": "echo-00001", "percent": 50, "tag": "a"}])
    assert refusal("Service", twice) == 'Multiple definitions for "a": spec.traffic[0].tag, spec.traffic[1].tag'
    assert refusal("Service", service(traffic=[{"percent": 100, "tag": "V2"}])).startswith(
        "invalid value: not a DNS 1035 label: [a DNS-1035 label must consist of lower case"
    )


def test_revision_names_in_traffic() -> None:
    bad = service(traffic=[{"revisionName": "Not_Valid!", "percent": 100}])
    assert refusal("Service", bad).startswith('invalid key name "Not_Valid!": spec.traffic[0].revisionName\n')
    mixed = service(traffic=[{"revisionName": "echo-00001", "latestRevision": True, "percent": 100}])
    assert refusal("Service", mixed) == (
        'may not set revisionName "echo-00001" when latestRevision is true: spec.traffic[0].latestRevision'
    )
    route = {"metadata": {"name": "r", "namespace": "ns"}, "spec": {"traffic": [{"percent": 100}]}}
    assert refusal("Route", route) == (
        "expected exactly one, got neither: spec.traffic[0].configurationName, spec.traffic[0].revisionName"
    )


def test_percent_bounds() -> None:
    obj = service(traffic=[{"latestRevision": True, "percent": 150}, {"revisionName": "echo-00001", "percent": -50}])
    assert refusal("Service", obj) == (
        "expected 0 <= -50 <= 100: spec.traffic[1].percent\nexpected 0 <= 150 <= 100: spec.traffic[0].percent"
    )


def test_revision_template_name_needs_the_service_prefix() -> None:
    obj = service()
    obj["spec"]["template"]["metadata"] = {"name": "other-v1"}
    assert refusal("Service", obj) == 'invalid value: "other-v1" must have prefix "echo-": spec.template.metadata.name'


def test_changing_a_named_template_without_a_new_name_is_refused() -> None:
    old = service()
    old["spec"]["template"]["metadata"] = {"name": "echo-v1"}
    webhook.set_defaults("Service", old, None, CONFIG)
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    message = refusal("Service", new, old)
    assert message.startswith(
        "Saw the following changes without a name change (-old +new): spec.template.metadata.name"
    )


def test_autoscaling_annotations_belong_on_the_template() -> None:
    obj = service()
    obj["metadata"]["annotations"] = {"autoscaling.knative.dev/min-scale": "1"}
    assert refusal("Service", obj) == (
        'invalid key name "autoscaling.knative.dev/min-scale": metadata.annotations\n'
        'autoscaling annotations must be put under "spec.template.metadata.annotations" to work'
    )


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({"min-scale": "3", "max-scale": "2"}, "max-scale=2 is less than min-scale=3"),
        ({"window": "5s"}, "expected 6s <= 5s <= 1h0m0s"),
        ({"window": "6.5s"}, "must be specified with at most second precision"),
        ({"target": "0"}, "target 0 should be at least 0.01"),
        ({"initial-scale": "0"}, "invalid value: 0"),
        ({"metric": "cpu"}, "invalid value: cpu"),
        ({"panic-threshold-percentage": "100"}, "expected 110 <= 100 <= 1000"),
    ],
)
def test_autoscaling_annotation_rules(annotations: dict[str, str], message: str) -> None:
    obj = service()
    obj["spec"]["template"]["metadata"] = {
        "annotations": {f"autoscaling.knative.dev/{k}": v for k, v in annotations.items()}
    }
    assert message in refusal("Service", obj)


def test_max_scale_limit_from_the_config_map() -> None:
    config = webhook.WebhookConfig(autoscaler=AutoscalerConfig(max_scale_limit=5, max_scale=3))
    obj = service()
    obj["spec"]["template"]["metadata"] = {"annotations": {"autoscaling.knative.dev/max-scale": "9"}}
    assert "expected 1 <= 9 <= 5" in refusal("Service", obj, config=config)


def test_pod_spec_rules_of_a_revision() -> None:
    obj = service()
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container["ports"] = [{"name": "http", "containerPort": 8012}]
    container["env"] = [{"name": "PORT", "value": "1"}]
    obj["spec"]["template"]["spec"]["securityContext"] = {"runAsUser": 1000}
    message = refusal("Service", obj)
    assert '"PORT" is a reserved environment variable: spec.template.spec.containers[0].env[0].name' in message
    assert "invalid value: 8012 is a reserved port: spec.template.spec.containers[0].ports.containerPort" in message
    assert "Port name http is not allowed: spec.template.spec.containers[0].ports" in message
    assert "must not set the field(s): spec.template.spec.securityContext" in message


def test_revision_spec_is_immutable() -> None:
    old = {"metadata": {"name": "echo-00001"}, "spec": {"containers": [{"image": IMAGE}]}}
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "other"
    assert refusal("Revision", new, old).startswith("Immutable fields changed (-old +new): spec")


def test_a_valid_service_passes() -> None:
    obj = service(
        traffic=[{"latestRevision": True, "percent": 60}, {"revisionName": "echo-00001", "percent": 40, "tag": "v1"}]
    )
    assert refusal("Service", obj) == ""
