"""The one Node, as `kubectl get/describe nodes`, `cordon` and the official client see it."""

from __future__ import annotations

import json
import os
import re

import psutil

from tests.integration.conftest import LocalCluster, poll_until


def test_get_nodes_shows_one_ready_node_with_its_version(cluster: LocalCluster) -> None:
    lines = cluster.kubectl("get", "nodes", "-o", "wide").stdout.splitlines()
    assert lines[0].split()[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    [row] = lines[1:]
    name, status, roles, _age, version, internal_ip, *_ = row.split()
    assert (name, status, roles, internal_ip) == ("localcluster", "Ready", "control-plane", "127.0.0.1")
    assert version.startswith("v1.37.")


def test_the_node_reports_this_machine(cluster: LocalCluster) -> None:
    core = __import__("kubernetes").client.CoreV1Api(cluster.api_client())
    node = core.read_node("localcluster")
    assert node.status.capacity["cpu"] == str(os.cpu_count())
    memory_ki = int(node.status.capacity["memory"].removesuffix("Ki"))
    assert memory_ki == psutil.virtual_memory().total // 1024
    assert int(node.status.allocatable["memory"].removesuffix("Ki")) == memory_ki - 100 * 1024
    assert {c.type: c.status for c in node.status.conditions} == {
        "MemoryPressure": "False",
        "DiskPressure": "False",
        "PIDPressure": "False",
        "Ready": "True",
    }
    assert node.status.node_info.kubelet_version.startswith("v1.37.")
    assert node.status.node_info.operating_system == "linux"
    pods = core.list_namespaced_pod("bookstore").items
    assert all(p.spec.node_name in (None, "localcluster") for p in pods)


def test_describe_node_shows_capacity_lease_and_system_info(cluster: LocalCluster) -> None:
    described = cluster.kubectl("describe", "node", "localcluster").stdout
    assert re.search(r"HolderIdentity:\s+localcluster", described), described
    assert "Failed to get lease" not in described
    assert re.search(r"Ready\s+True\s.*KubeletReady", described)
    for section in ("Capacity:", "Allocatable:", "System Info:", "Non-terminated Pods:"):
        assert section in described


def test_a_cordoned_node_takes_no_new_pods_until_uncordoned(cluster: LocalCluster) -> None:
    cluster.kubectl("cordon", "localcluster")
    try:
        assert "SchedulingDisabled" in cluster.kubectl("get", "node", "localcluster").stdout
        cluster.kubectl("run", "waits", "--image=busybox", "--restart=Never")
        pending = poll_until(
            lambda: json.loads(cluster.kubectl("get", "pod", "waits", "-o", "json").stdout),
            lambda p: any(c["type"] == "PodScheduled" for c in p["status"].get("conditions", [])),
            "the scheduler's verdict",
        )
        [scheduled] = [c for c in pending["status"]["conditions"] if c["type"] == "PodScheduled"]
        assert scheduled["status"] == "False" and "were unschedulable" in scheduled["message"]
        assert not pending["spec"].get("nodeName")
    finally:
        cluster.kubectl("uncordon", "localcluster")
    poll_until(
        lambda: json.loads(cluster.kubectl("get", "pod", "waits", "-o", "json").stdout),
        lambda p: p["spec"].get("nodeName") == "localcluster",
        "the pod bound once the node is uncordoned",
    )
    cluster.kubectl("delete", "pod", "waits", "--wait=false")
