"""Knative's ConfigMaps: the reference files give upstream's defaults; bad values are refused as upstream words it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from localcluster.knative import conditions as cs
from localcluster.knative import traffic
from localcluster.knative._go import execute_template, format_duration, format_float, parse_duration
from localcluster.knative.config import AutoscalerConfig, ConfigError, DefaultsConfig, DomainConfig, NetworkConfig
from localcluster.knative.domains import domain_name, hostname
from localcluster.knative.names import child_name, revision_name
from localcluster.settings import Settings

REFERENCE = Settings().shared_dir / "reference"


def example(file_name: str) -> dict[str, str]:
    """The documented `_example` block of a reference ConfigMap, as the keys it would set."""
    data = yaml.safe_load((REFERENCE / file_name).read_text())["data"]
    return {key: str(value) for key, value in yaml.safe_load(data["_example"]).items()}


def reference_data(file_name: str) -> dict[str, str]:
    return yaml.safe_load(Path(REFERENCE / file_name).read_text())["data"]


def test_the_documented_autoscaler_values_are_the_defaults() -> None:
    assert AutoscalerConfig.from_data(reference_data("knative-config-autoscaler.yaml")) == AutoscalerConfig()
    assert AutoscalerConfig.from_data(example("knative-config-autoscaler.yaml")) == AutoscalerConfig()


def test_the_documented_defaults_are_the_defaults() -> None:
    documented = DefaultsConfig.from_data(example("knative-config-defaults.yaml"))
    assert documented.revision_timeout_seconds == DefaultsConfig().revision_timeout_seconds == 300
    assert documented.container_name_template == "user-container"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"stable-window": "5s"}, "stable-window = 5s, must be in [6s; 1h0m0s] range"),
        (
            {"stable-window": "soon"},
            'failed to parse data: failed to parse "stable-window": time: invalid duration "soon"',
        ),
        ({"max-scale-up-rate": "1"}, "max-scale-up-rate = 1, must be greater than 1.0"),
        ({"scale-to-zero-grace-period": "0s"}, "scale-to-zero-grace-period must be positive, was: 0s"),
        ({"min-scale": "3", "max-scale": "2"}, "min-scale (3) must be less than max-scale (2)"),
        ({"container-concurrency-target-percentage": "0"}, "is outside of valid range of (0, 100]"),
    ],
)
def test_autoscaler_config_refusals(data: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=None) as refused:
        AutoscalerConfig.from_data(data)
    assert message in str(refused.value)


def test_percentages_and_fractions() -> None:
    assert (
        AutoscalerConfig.from_data(
            {"container-concurrency-target-percentage": "80"}
        ).container_concurrency_target_fraction
        == 0.8
    )
    assert (
        AutoscalerConfig.from_data(
            {"container-concurrency-target-percentage": "0.5"}
        ).container_concurrency_target_fraction
        == 0.5
    )


def test_domains_default_to_the_cluster_domain_and_the_most_specific_selector_wins() -> None:
    assert DomainConfig.from_data(reference_data("knative-config-domain.yaml")).lookup({}) == "svc.cluster.local"
    config = DomainConfig.from_data({"example.com": "", "example.org": "selector:\n  app: nonprofit\n"})
    assert config.lookup({"app": "nonprofit"}) == "example.org"
    assert config.lookup({"app": "other"}) == "example.com"
    assert config.lookup({"networking.knative.dev/visibility": "cluster-local"}) == "svc.cluster.local"


def test_route_hosts_from_the_templates() -> None:
    domains, network = DomainConfig.from_data(None), NetworkConfig()
    meta = {"name": "echo", "namespace": "ns"}
    assert domain_name(meta, "echo", domains, network) == "echo.ns.svc.cluster.local"
    assert domain_name(meta, hostname("echo", "v2", network), domains, network) == "v2-echo.ns.svc.cluster.local"
    custom = NetworkConfig.from_data({"domain-template": "{{.Name}}-{{.Namespace}}.{{.Domain}}"})
    assert domain_name(meta, "echo", domains, custom) == "echo-ns.svc.cluster.local"
    with pytest.raises(ConfigError, match="localcluster evaluates the actions"):
        NetworkConfig.from_data({"domain-template": "{{if .Name}}x{{end}}"})


def test_go_spellings() -> None:
    assert [format_duration(parse_duration(text)) for text in ("60s", "1h", "1.5s", "100ms", "0")] == [
        "1m0s",
        "1h0m0s",
        "1.5s",
        "100ms",
        "0s",
    ]
    assert [format_float(value) for value in (1.0, 0.7, 1e6, 0.00001)] == ["1", "0.7", "1e+06", "1e-05"]
    assert execute_template('{{index .Labels "app"}}-{{ .Name -}} .x', {"Name": "n", "Labels": {"app": "a"}}) == "a-n.x"


def test_names() -> None:
    assert revision_name("echo", 1) == "echo-00001"
    long_name = "a" * 60
    assert len(child_name(long_name, "-deployment")) == 63
    assert child_name(long_name, "-deployment").endswith("-deployment")


def test_conditions_follow_their_dependents() -> None:
    status: dict = {}
    manager = cs.SERVICE.manage(status, "t0")
    manager.initialize()
    assert [c["status"] for c in status["conditions"]] == ["Unknown", "Unknown", "Unknown"]
    manager.mark_false("ConfigurationsReady", "RevisionFailed", "boom")
    assert manager.get("Ready") == {
        "type": "Ready",
        "status": "False",
        "reason": "RevisionFailed",
        "message": "boom",
        "lastTransitionTime": "t0",
    }
    cs.SERVICE.manage(status, "t1").mark_true("ConfigurationsReady")
    cs.SERVICE.manage(status, "t2").mark_true("RoutesReady")
    ready = cs.SERVICE.manage(status, "t3").get("Ready")
    assert ready is not None and ready["status"] == "True" and ready["lastTransitionTime"] == "t2"
    revision: dict = {}
    cs.REVISION.manage(revision, "t0").mark_false("Active", "NoTraffic", "idle")
    assert cs.REVISION.manage(revision, "t0").get("Active")["severity"] == "Info"
    assert cs.REVISION.manage(revision, "t0").get("Ready") is None


def test_traffic_split_by_host() -> None:
    status = [
        {"revisionName": "echo-00001", "percent": 50, "tag": "v1"},
        {"revisionName": "echo-00002", "percent": 50},
        {"revisionName": "echo-00002", "percent": 0, "tag": "latest"},
    ]
    assert traffic.split(status, "") == [("echo-00001", 50), ("echo-00002", 50)]
    assert traffic.split(status, "v1") == [("echo-00001", 100)]
    assert traffic.split(status, "latest") == [("echo-00002", 100)]
