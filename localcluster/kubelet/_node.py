"""The Node object of the one node, as a kubelet registers it and keeps it current.

`kubectl get/describe nodes` read it: capacity of this machine (CPUs, memory, the disk under
LAB_HOME), allocatable as the kubelet's default eviction thresholds leave it (100Mi of memory, 10%
of the disk), the node's addresses, its pod network, the four conditions, and nodeInfo. As upstream,
the kubelet renews a Lease in `kube-node-lease` every 10 s and posts the Node status every 5 minutes
(or when what it reports changes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from localcluster.api.cluster import Cluster, now
from localcluster.api.errors import ApiError

log = logging.getLogger("localcluster.kubelet")

#: The kubelet's defaults: a Lease renewed every 10 s (0.25 of its 40 s), status posted every 5 min.
LEASE_DURATION_SECONDS = 40
LEASE_RENEW_SECONDS = 10.0
STATUS_REPORT_SECONDS = 300.0
LEASE_NAMESPACE = "kube-node-lease"
MAX_PODS = 110
#: --eviction-hard defaults: memory.available<100Mi, nodefs.available<10%.
_EVICTION_MEMORY_BYTES = 100 * 1024 * 1024
_EVICTION_DISK_FRACTION = 0.10
_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_CONDITIONS = (
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME":
            return value.strip('"')
    return f"{platform.system()} {platform.release()}"


def _version() -> str:
    try:
        return metadata.version("cloud-native-bookstore")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def node_info(kubelet_version: str) -> dict[str, str]:
    """NodeSystemInfo of this machine; the container runtime is localcluster's process groups."""
    machine_id = _read("/etc/machine-id")
    return {
        "machineID": machine_id,
        "systemUUID": _read("/sys/class/dmi/id/product_uuid") or machine_id,
        "bootID": _read("/proc/sys/kernel/random/boot_id"),
        "kernelVersion": platform.release(),
        "osImage": _os_image(),
        "containerRuntimeVersion": f"localcluster://{_version()}",
        "kubeletVersion": kubelet_version,
        # Not omitempty, and left empty since DisableNodeKubeProxyVersion went GA (there is no kube-proxy).
        "kubeProxyVersion": "",
        "operatingSystem": platform.system().lower(),
        "architecture": _ARCHITECTURES.get(platform.machine().lower(), platform.machine().lower()),
    }


def resources(home: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(capacity, allocatable): this machine's, less the default eviction thresholds."""
    memory = psutil.virtual_memory().total
    disk = shutil.disk_usage(home).total
    cpus = str(os.cpu_count() or 1)
    capacity = {
        "cpu": cpus,
        "ephemeral-storage": f"{disk // 1024}Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": f"{memory // 1024}Ki",
        "pods": str(MAX_PODS),
    }
    allocatable = {
        **capacity,
        "ephemeral-storage": str(int(disk * (1 - _EVICTION_DISK_FRACTION))),
        "memory": f"{max(memory - _EVICTION_MEMORY_BYTES, 0) // 1024}Ki",
    }
    return capacity, allocatable


class NodeAgent:
    """Registers node `name`, then keeps its Lease renewed and its status posted."""

    def __init__(
        self, cluster: Cluster, *, name: str, home: Path, host_ip: str, pod_cidr: str, kubelet_version: str
    ) -> None:
        self.cluster = cluster
        self.name = name
        self.home = home
        self.host_ip = host_ip
        self.pod_cidr = pod_cidr
        self.kubelet_version = kubelet_version
        self.nodes = cluster.registry.get("", "nodes")
        self.leases = cluster.registry.get("coordination.k8s.io", "leases")

    def register(self) -> None:
        """Create the Node (or, after a restart, take it over) and post its status and Lease."""
        if self.cluster.find(self.nodes, "", self.name) is None:
            self.cluster.create(self.nodes, "v1", "", self.manifest(), user_agent="kubelet")
        self.post_status(heartbeat=True)
        self.renew_lease()

    def manifest(self) -> dict[str, Any]:
        arch = _ARCHITECTURES.get(platform.machine().lower(), platform.machine().lower())
        system = platform.system().lower()
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "beta.kubernetes.io/arch": arch,
                    "beta.kubernetes.io/os": system,
                    "kubernetes.io/arch": arch,
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": system,
                    # It runs the API server and the controllers too, as kind's single node does.
                    "node-role.kubernetes.io/control-plane": "",
                },
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
            },
            "spec": {"podCIDR": self.pod_cidr, "podCIDRs": [self.pod_cidr]},
        }

    def status(self, previous: dict[str, Any] | None, *, heartbeat: bool) -> dict[str, Any]:
        """The status to post: conditions keep their transition times and, unless `heartbeat`, their heartbeats."""
        timestamp = now()
        old = {c.get("type"): c for c in (previous or {}).get("conditions") or []}
        conditions = []
        for kind, state, reason, message in _CONDITIONS:
            before = old.get(kind) or {}
            same = before.get("status") == state
            conditions.append(
                {
                    "type": kind,
                    "status": state,
                    "lastHeartbeatTime": before.get("lastHeartbeatTime", timestamp)
                    if same and not heartbeat
                    else timestamp,
                    "lastTransitionTime": before.get("lastTransitionTime", timestamp) if same else timestamp,
                    "reason": reason,
                    "message": message,
                }
            )
        capacity, allocatable = resources(self.home)
        return {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": self.host_ip}, {"type": "Hostname", "address": self.name}],
            # No kubelet port: exec, attach, logs and port-forward are served by the API server itself.
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": node_info(self.kubelet_version),
        }

    def post_status(self, *, heartbeat: bool) -> None:
        node = self.cluster.find(self.nodes, "", self.name)
        if node is None:  # deleted by a user: register again, as a kubelet does
            self.cluster.create(self.nodes, "v1", "", self.manifest(), user_agent="kubelet")
            node = self.cluster.get(self.nodes, "", self.name)
        status = self.status(node.get("status"), heartbeat=heartbeat)
        if status != node.get("status"):
            self.cluster.replace(self.nodes, "v1", "", self.name, {**node, "status": status}, subresource="status")

    def renew_lease(self) -> None:
        spec = {
            "holderIdentity": self.name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": now().replace("Z", ".000000Z"),
        }
        lease = self.cluster.find(self.leases, LEASE_NAMESPACE, self.name)
        if lease is None:
            node = self.cluster.get(self.nodes, "", self.name)
            owner = {"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": node["metadata"]["uid"]}
            manifest = {"metadata": {"name": self.name, "ownerReferences": [owner]}, "spec": spec}
            self.cluster.create(self.leases, "v1", LEASE_NAMESPACE, manifest, user_agent="kubelet")
            return
        lease["spec"] = {**lease.get("spec", {}), **spec}
        self.cluster.replace(self.leases, "v1", LEASE_NAMESPACE, self.name, lease, user_agent="kubelet")

    async def run(self) -> None:
        """Renew the Lease every 10 s and post the status every 5 minutes, until cancelled."""
        since_status = 0.0
        while True:
            await asyncio.sleep(LEASE_RENEW_SECONDS)
            since_status += LEASE_RENEW_SECONDS
            try:
                self.renew_lease()
                self.post_status(heartbeat=since_status >= STATUS_REPORT_SECONDS)
            except ApiError as exc:
                log.warning("node %s: status not posted: %s", self.name, exc.message)
            if since_status >= STATUS_REPORT_SECONDS:
                since_status = 0.0
