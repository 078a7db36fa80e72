"""Container environments: precedence, $(VAR) expansion, downward API, ConfigMap/Secret references,
service links and the variables localcluster adds for its network."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from localcluster.kubelet import SHIM_DIR
from localcluster.kubelet._env import (
    ContainerConfigError,
    HostEndpoints,
    declared_env,
    expand,
    field_value,
    process_env,
    service_links,
)

HOST = HostEndpoints("127.0.0.1", 6443, "http://127.0.0.1:3128")
POD = {
    "metadata": {
        "name": "web",
        "namespace": "shop",
        "uid": "u-1",
        "labels": {"app": "web", "tier": "front"},
        "annotations": {"note": "hi"},
    },
    "spec": {"nodeName": "localcluster", "serviceAccountName": "default", "enableServiceLinks": True},
}
OBJECTS: dict[tuple[str, str], dict[str, Any]] = {
    ("configmaps", "settings"): {"metadata": {"name": "settings"}, "data": {"MODE": "fast", "bad=key": "x"}},
    ("secrets", "db"): {"metadata": {"name": "db"}, "data": {"PASSWORD": base64.b64encode(b"s3cret").decode()}},
}


def lookup(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    assert namespace == "shop"
    return OBJECTS.get((kind, name))


def env_of(container: dict[str, Any], services: list[dict[str, Any]] | None = None) -> dict[str, str]:
    return declared_env(POD, container, pod_ip="127.244.0.7", lookup=lookup, services=services or [], host=HOST)


def test_expansion_replaces_defined_names_and_keeps_the_rest() -> None:
    variables = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)-$(C)-$$(A)-$", variables) == "1-two-$(C)-$(A)-$"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("metadata.name", "web"),
        ("metadata.namespace", "shop"),
        ("metadata.labels['tier']", "front"),
        ("metadata.annotations['note']", "hi"),
        ("metadata.labels['missing']", ""),
        ("status.podIP", "127.244.0.7"),
        ("status.hostIP", "127.0.0.1"),
        ("spec.nodeName", "localcluster"),
        ("spec.serviceAccountName", "default"),
        ("metadata.labels", 'app="web"\ntier="front"'),
    ],
)
def test_downward_api_fields(path: str, value: str) -> None:
    assert field_value(POD, path, "127.244.0.7") == value


def test_an_unknown_field_path_is_a_config_error() -> None:
    with pytest.raises(ContainerConfigError, match=r"unsupported fieldPath 'spec\.bogus'"):
        field_value(POD, "spec.bogus", "127.244.0.7")


def test_env_overrides_env_from_which_overrides_service_links() -> None:
    service = {"metadata": {"name": "mode"}, "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}}
    env = env_of(
        {
            "envFrom": [{"configMapRef": {"name": "settings"}}, {"secretRef": {"name": "db"}, "prefix": "DB_"}],
            "env": [
                {"name": "MODE", "value": "slow"},
                {"name": "URL", "value": "http://$(MODE_SERVICE_HOST)/$(MODE)"},
                {"name": "MODE_SERVICE_HOST", "value": "overridden"},
            ],
        },
        [service],
    )
    assert env["MODE"] == "slow"
    assert env["DB_PASSWORD"] == "s3cret"
    assert env["URL"] == "http://10.0.0.1/slow"
    assert env["MODE_SERVICE_HOST"] == "overridden"
    assert "bad=key" not in env


def test_value_from_keys_and_missing_sources() -> None:
    env = env_of(
        {
            "env": [
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "PASSWORD"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "x", "optional": True}}},
            ]
        }
    )
    assert (env["PASSWORD"], env["POD_IP"], env["OPT"]) == ("s3cret", "127.244.0.7", "")
    with pytest.raises(ContainerConfigError, match='configmap "gone" not found'):
        env_of({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "x"}}}]})
    with pytest.raises(ContainerConfigError, match="couldn't find key NOPE in ConfigMap shop/settings"):
        env_of({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "NOPE"}}}]})
    with pytest.raises(ContainerConfigError, match='secret "gone" not found'):
        env_of({"envFrom": [{"secretRef": {"name": "gone"}}]})


def test_service_links_as_upstream_names_them() -> None:
    service = {
        "metadata": {"name": "stock-api"},
        "spec": {"clusterIP": "10.96.0.12", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    }
    headless = {"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}}
    assert service_links([service, headless]) == {
        "STOCK_API_SERVICE_HOST": "10.96.0.12",
        "STOCK_API_SERVICE_PORT": "80",
        "STOCK_API_SERVICE_PORT_HTTP": "80",
        "STOCK_API_PORT": "tcp://10.96.0.12:80",
        "STOCK_API_PORT_80_TCP": "tcp://10.96.0.12:80",
        "STOCK_API_PORT_80_TCP_PROTO": "tcp",
        "STOCK_API_PORT_80_TCP_PORT": "80",
        "STOCK_API_PORT_80_TCP_ADDR": "10.96.0.12",
    }


def test_service_links_can_be_disabled_but_the_api_is_always_announced() -> None:
    service = {"metadata": {"name": "stock"}, "spec": {"clusterIP": "10.0.0.2", "ports": [{"port": 80}]}}
    pod = {**POD, "spec": {**POD["spec"], "enableServiceLinks": False}}
    env = declared_env(pod, {}, pod_ip="127.244.0.7", lookup=lookup, services=[service], host=HOST)
    assert "STOCK_SERVICE_HOST" not in env
    assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == ("127.0.0.1", "6443")


def test_the_process_gets_the_image_path_the_proxy_and_the_shim() -> None:
    env = process_env(
        {"PYTHONPATH": "/mine", "HTTP_PROXY": "http://my-proxy"},
        pod_name="web",
        namespace="shop",
        pod_ip="127.244.0.7",
        home="/h",
        host=HOST,
    )
    assert env["PATH"].split(":")[0].endswith("bin")
    assert env["HOSTNAME"] == "web" and env["HOME"] == "/h"
    assert env["HTTP_PROXY"] == "http://my-proxy", "the manifest's own proxy wins"
    assert env["http_proxy"] == "http://127.0.0.1:3128"
    assert env["NO_PROXY"] == "localhost,127.0.0.1,127.244.0.7,127.0.0.1"
    assert env["PYTHONPATH"] == f"{SHIM_DIR}:/mine"
    assert env["LOCALCLUSTER_POD_IP"] == "127.244.0.7"
    assert env["LOCALCLUSTER_POD_NAMESPACE"] == "shop"
    assert env["LOCALCLUSTER_HOST_ENDPOINTS"] == "127.0.0.1:6443 127.0.0.1:3128"


def test_the_shim_follows_the_service_rules_unless_the_manifest_names_its_own_proxy() -> None:
    host = HostEndpoints("127.0.0.1", 6443, "http://127.0.0.1:3128", "/home/network/service-rules.json")
    plain = process_env({}, pod_name="web", namespace="shop", pod_ip="127.244.0.7", home="/h", host=host)
    assert plain["LOCALCLUSTER_SERVICE_RULES"] == "/home/network/service-rules.json"
    assert plain["HTTP_PROXY"] == "http://127.0.0.1:3128", "non-Python programs still reach Services"
    own = process_env(
        {"http_proxy": "http://my-proxy"}, pod_name="web", namespace="shop", pod_ip="127.244.0.7", home="/h", host=host
    )
    assert "LOCALCLUSTER_SERVICE_RULES" not in own


def test_without_a_proxy_no_proxy_variables_are_set() -> None:
    host = HostEndpoints("127.0.0.1", 6443, service_rules="/home/network/service-rules.json")
    env = process_env({}, pod_name="web", namespace="shop", pod_ip="127.244.0.7", home="/h", host=host)
    assert not {"HTTP_PROXY", "http_proxy", "NO_PROXY", "LOCALCLUSTER_SERVICE_RULES"} & set(env)
    assert env["LOCALCLUSTER_HOST_ENDPOINTS"] == "127.0.0.1:6443"
