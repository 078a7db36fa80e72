"""The Node the kubelet registers: resources of this machine, and conditions that keep their times."""

from __future__ import annotations

import shutil
from pathlib import Path

import psutil
import pytest

from localcluster.kubelet._node import NodeAgent, node_info, resources
from localcluster.server import build
from localcluster.settings import Settings


def test_allocatable_is_capacity_less_the_default_eviction_thresholds(tmp_path: Path) -> None:
    capacity, allocatable = resources(tmp_path)
    memory_ki = psutil.virtual_memory().total // 1024
    assert capacity["memory"] == f"{memory_ki}Ki" and allocatable["memory"] == f"{memory_ki - 102400}Ki"
    disk = shutil.disk_usage(tmp_path).total
    assert capacity["ephemeral-storage"] == f"{disk // 1024}Ki"
    assert allocatable["ephemeral-storage"] == str(int(disk * 0.9))
    assert capacity["pods"] == allocatable["pods"] == "110"


def test_node_info_has_every_field_the_clients_require() -> None:
    info = node_info("v1.37.0")
    assert set(info) == {
        "machineID",
        "systemUUID",
        "bootID",
        "kernelVersion",
        "osImage",
        "containerRuntimeVersion",
        "kubeletVersion",
        "kubeProxyVersion",
        "operatingSystem",
        "architecture",
    }
    assert info["containerRuntimeVersion"].startswith("localcluster://")


@pytest.fixture
def agent(tmp_path: Path):
    cluster, _ = build(Settings(home=tmp_path), "token", "127.0.0.1:0")
    yield NodeAgent(
        cluster,
        name="localcluster",
        home=tmp_path,
        host_ip="127.0.0.1",
        pod_cidr="127.244.0.0/16",
        kubelet_version="v1",
    )
    cluster.store.close()


def test_register_creates_the_node_and_its_lease(agent: NodeAgent) -> None:
    agent.register()
    node = agent.cluster.get(agent.nodes, "", "localcluster")
    assert node["spec"]["podCIDR"] == "127.244.0.0/16"
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "localcluster"
    assert [c["type"] for c in node["status"]["conditions"]] == [
        "MemoryPressure",
        "DiskPressure",
        "PIDPressure",
        "Ready",
    ]
    lease = agent.cluster.get(agent.leases, "kube-node-lease", "localcluster")
    assert lease["spec"]["holderIdentity"] == "localcluster" and lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]


def test_posting_unchanged_status_writes_nothing_until_a_heartbeat(agent: NodeAgent) -> None:
    agent.register()
    version = agent.cluster.get(agent.nodes, "", "localcluster")["metadata"]["resourceVersion"]
    agent.post_status(heartbeat=False)
    assert agent.cluster.get(agent.nodes, "", "localcluster")["metadata"]["resourceVersion"] == version
    previous = agent.cluster.get(agent.nodes, "", "localcluster")["status"]
    status = agent.status(
        {
            **previous,
            "conditions": [{**c, "lastHeartbeatTime": "2000-01-01T00:00:00Z"} for c in previous["conditions"]],
        },
        heartbeat=True,
    )
    assert all(c["lastHeartbeatTime"] != "2000-01-01T00:00:00Z" for c in status["conditions"])
    assert [c["lastTransitionTime"] for c in status["conditions"]] == [
        c["lastTransitionTime"] for c in previous["conditions"]
    ]


def test_a_deleted_node_registers_again(agent: NodeAgent) -> None:
    agent.register()
    agent.cluster.delete(agent.nodes, "", "localcluster")
    agent.post_status(heartbeat=False)
    assert agent.cluster.find(agent.nodes, "", "localcluster") is not None
