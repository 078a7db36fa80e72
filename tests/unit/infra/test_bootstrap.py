"""infra/cluster/bootstrap.py without a cluster: the plan it would run (--dry-run), its pins, its refusals."""

from __future__ import annotations

import importlib.util
import re
import sys
from types import ModuleType

import pytest
import yaml
from click.testing import CliRunner

from localcluster.api.app import KUBERNETES_VERSION
from localcluster.settings import PROJECT_IMAGE, PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "infra" / "cluster" / "bootstrap.py"


@pytest.fixture(scope="module")
def bootstrap() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bookstore_bootstrap", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def run(bootstrap: ModuleType, *args: str) -> list[str]:
    result = CliRunner().invoke(bootstrap.main, list(args))
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_up_on_kind_creates_installs_exposes_and_waits_in_order(bootstrap: ModuleType) -> None:
    lines = run(bootstrap, "up", "--dry-run")
    steps = [line for line in lines if line.startswith("# ") and "/" in line.split()[1]]
    assert steps[0].startswith("# 1/13 create the kind cluster 'bookstore'")
    commands = [line for line in lines if line.startswith(("kind ", "kubectl "))]
    assert commands[0] == "kind create cluster --name bookstore --config - --wait 120s <<'EOF'"
    assert commands[1] == f"kind load docker-image {PROJECT_IMAGE} --name bookstore"
    order = [
        next(i for i, c in enumerate(commands) if key in c)
        for key in (
            "serving-crds",
            "serving-core",
            "-l knative.dev/crd-install=true -f https://github.com/knative/net-istio",
            "net-istio.yaml",
            "patch service istio-ingressgateway",
            "wait --for=condition=Available",
        )
    ]
    assert order == sorted(order)
    assert all("--context kind-bookstore" in c for c in commands if c.startswith("kubectl"))
    assert lines[-1] == "# then: lab up --target cluster --context kind-bookstore --ingress http://127.0.0.1:8080"


def test_the_kind_node_maps_the_ingress_node_port_to_the_host(bootstrap: ModuleType) -> None:
    config = yaml.safe_load(bootstrap.kind_config(bootstrap.Target(http_port=9090)))
    (node,) = config["nodes"]
    assert node["image"] == bootstrap.VERSIONS["kind-node"]
    assert node["extraPortMappings"] == [
        {
            "containerPort": bootstrap.INGRESS_NODE_PORT,
            "hostPort": 9090,
            "listenAddress": "127.0.0.1",
            "protocol": "TCP",
        }
    ]
    patch = next(s for s in bootstrap.plan_up(bootstrap.Target()) if "patch" in s.argv).argv[-1]
    assert f'"nodePort":{bootstrap.INGRESS_NODE_PORT}' in patch


def test_an_existing_context_gets_no_kind_steps(bootstrap: ModuleType) -> None:
    commands = [
        line
        for line in run(bootstrap, "up", "--context", "gke-class", "--dry-run")
        if line.startswith(("kind ", "kubectl "))
    ]
    assert not [c for c in commands if c.startswith("kind ")]
    assert all(c.startswith("kubectl --context gke-class ") for c in commands)
    assert not [c for c in commands if "istio-ingressgateway" in c]


def test_down_deletes_the_kind_cluster_or_uninstalls_in_reverse(bootstrap: ModuleType) -> None:
    assert "kind delete cluster --name bookstore" in run(bootstrap, "down", "--dry-run")
    removed = [
        line for line in run(bootstrap, "down", "--context", "gke-class", "--dry-run") if line.startswith("kubectl")
    ]
    names = [re.search(r"/([\w-]+)\.yaml$", line).group(1) for line in removed]
    assert names == ["net-istio", "istio", "serving-core", "serving-crds"]


def test_the_pins_agree(bootstrap: ModuleType) -> None:
    node = bootstrap.VERSIONS["kind-node"]
    assert re.fullmatch(r"kindest/node:v(\d+)\.(\d+)\.\d+@sha256:[0-9a-f]{64}", node)
    major, minor = re.match(r"kindest/node:v(\d+)\.(\d+)", node).groups()
    assert (major, minor) == (KUBERNETES_VERSION["major"], KUBERNETES_VERSION["minor"])  # localcluster's version
    urls = bootstrap.MANIFESTS.values()
    assert {re.search(r"knative-v([\d.]+)/", url).group(1) for url in urls} == {bootstrap.VERSIONS["knative"]}
    assert bootstrap.DEFAULT_IMAGE == PROJECT_IMAGE


def test_without_its_tools_it_says_which_are_missing(bootstrap: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    result = CliRunner().invoke(bootstrap.main, ["up"])
    assert result.exit_code == 1
    assert "needs kind, kubectl on PATH" in result.output
