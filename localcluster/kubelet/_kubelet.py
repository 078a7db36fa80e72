"""The node: schedules pods onto itself, runs them as process groups, serves their logs."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import httpx
from starlette.responses import Response
from starlette.routing import BaseRoute

from localcluster import processes
from localcluster.api.app import KUBERNETES_VERSION
from localcluster.api.authentication import API_AUDIENCES, ServiceAccountTokens
from localcluster.api.cluster import Cluster, now
from localcluster.api.errors import ApiError
from localcluster.controllers.base import reconcile_on_changes
from localcluster.kubelet._env import HostEndpoints
from localcluster.kubelet._logs import LogLimits, LogService
from localcluster.kubelet._node import NodeAgent
from localcluster.kubelet._podnet import HOST_IP, allocate_ip, claim_pod_network, is_pod_ip
from localcluster.kubelet._security import NodeUser
from localcluster.kubelet._status import TERMINAL_PHASES, merge_conditions
from localcluster.kubelet._streaming import StreamingServer
from localcluster.kubelet._volumes import VolumeError, claim_dir
from localcluster.kubelet._worker import PodWorker
from localcluster.store import WatchEvent

log = logging.getLogger("localcluster.kubelet")

#: The one node; pods without spec.nodeName are bound to it.
NODE_NAME = "localcluster"
#: Grace a pod gets when localcluster itself stops (`lab down`), whatever its own period.
SHUTDOWN_GRACE_SECONDS = 5.0
#: What the kubelet labels the process groups it records (and sweeps after a crash).
_PROCESS_LABEL = "pod "


class Kubelet:
    """Runs the pods bound to node `localcluster` on this machine.

    Construct it before the API app (it supplies `read_logs` and `routes`), then `start(cluster,
    proxy_url=...)` on the server's event loop and `await stop()` before the store closes.
    """

    def __init__(
        self,
        home: Path,
        *,
        api_host: str,
        api_port: int,
        log_limits: LogLimits | None = None,
        node_user: NodeUser | None = None,
    ) -> None:
        self.home = home
        self.log_limits = log_limits or LogLimits()
        #: Who runs the pods; only root can run them as their securityContext's users (see `_security`).
        self.node_user = node_user or NodeUser.current()
        self.pod_network = claim_pod_network(home)
        self.pods_dir = home / "pods"
        self.host = HostEndpoints(api_host, api_port)
        self.logs = LogService(self.pods_dir)
        self.workers: dict[str, PodWorker] = {}
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._deleting: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._cluster: Cluster | None = None
        self._tokens: ServiceAccountTokens | None = None
        self._http: httpx.AsyncClient | None = None

    # -- wiring --------------------------------------------------------------------------------

    async def read_logs(self, pod: dict[str, Any], params: dict[str, str]) -> Response:
        """The API server's `pods/log` hook."""
        return await self.logs.read_logs(pod, params)

    @property
    def routes(self) -> list[BaseRoute]:
        """Extra API routes: the pods' exec, attach and port-forward (WebSockets)."""
        return StreamingServer(self).routes()

    @property
    def cluster(self) -> Cluster:
        assert self._cluster is not None, "Kubelet.start(cluster) first"
        return self._cluster

    @property
    def http(self) -> httpx.AsyncClient:
        """The probes' HTTP client (no proxy, no certificate checks, as the kubelet's prober)."""
        if self._http is None:
            self._http = httpx.AsyncClient(trust_env=False, verify=False, follow_redirects=False)
        return self._http

    def start(
        self,
        cluster: Cluster,
        *,
        proxy_url: str | None = None,
        service_rules: str | None = None,
        tokens: ServiceAccountTokens | None = None,
    ) -> None:
        """Stop pods a crashed predecessor left running, then run the node's pods (call on the loop).

        `proxy_url` is the service proxy, given to pods as HTTP_PROXY (None: no service network);
        `service_rules` the file of Service routes their network shim follows (None: all through the proxy);
        `tokens` signs the ServiceAccount tokens projected into pods (None: pods that mount one wait).
        """
        self._cluster = cluster
        self._tokens = tokens
        self.host = HostEndpoints(self.host.api_host, self.host.api_port, proxy_url, service_rules)
        registry = cluster.registry
        self.pods = registry.get("", "pods")
        self.claims = registry.get("", "persistentvolumeclaims")
        self._kinds = {kind: registry.get("", kind) for kind in ("configmaps", "secrets", "persistentvolumeclaims")}
        self.services_type = registry.get("", "services")
        self._service_accounts = registry.get("", "serviceaccounts")
        for pgid, name in processes.recorded(self.home):
            if name.startswith(_PROCESS_LABEL):
                processes.stop_group(pgid, grace=0)
                processes.forget(self.home, pgid)
        known = {entry.obj["metadata"]["uid"] for entry in cluster.store.list(self.pods.key)[0]}
        for pod_dir in self.pods_dir.glob("*") if self.pods_dir.is_dir() else []:
            if pod_dir.name not in known:
                shutil.rmtree(pod_dir, ignore_errors=True)
        self.node = NodeAgent(
            cluster,
            name=NODE_NAME,
            home=self.home,
            host_ip=HOST_IP,
            pod_cidr=str(self.pod_network.network),
            kubelet_version=KUBERNETES_VERSION["gitVersion"],
        )
        self.node.register()
        self.spawn(self.node.run())
        self._loop = asyncio.create_task(reconcile_on_changes(cluster, "kubelet", self.sync), name="kubelet")

    async def stop(self) -> None:
        """Stop every pod's processes (a short grace: localcluster is going down) and record their end."""
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        await asyncio.gather(
            *(
                worker.stop(min(float(worker.spec.get("terminationGracePeriodSeconds", 30)), SHUTDOWN_GRACE_SECONDS))
                for worker in self.workers.values()
            )
        )
        await asyncio.gather(*self._runs.values(), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
        self.pod_network.release()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run a background step, keeping a reference so it is not collected and is cancelled at stop."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- what workers ask ----------------------------------------------------------------------

    def lookup(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.cluster.find(self._kinds[kind], namespace, name)

    def service_account_token(self, pod: dict[str, Any], audience: str, expiration_seconds: int) -> str:
        """A token of the pod's ServiceAccount, bound to the pod (the kubelet's TokenRequest); VolumeError if none."""
        namespace, spec = pod["metadata"].get("namespace", "default"), pod.get("spec") or {}
        name = spec.get("serviceAccountName") or "default"
        account = self.cluster.find(self._service_accounts, namespace, name)
        if self._tokens is None or account is None:
            raise VolumeError(f'failed to fetch token: serviceaccounts "{name}" not found')
        audiences = [audience] if audience else list(API_AUDIENCES)
        return self._tokens.issue(account, audiences=audiences, expiration_seconds=expiration_seconds, bound=pod).token

    def services(self, namespace: str) -> list[dict[str, Any]]:
        return [entry.obj for entry in self.cluster.store.list(self.services_type.key, namespace)[0]]

    def allocate_ip(self) -> str:
        taken = {worker.pod_ip for worker in self.workers.values() if worker.pod_ip}
        for entry in self.cluster.store.list(self.pods.key)[0]:
            status = entry.obj.get("status") or {}
            if status.get("podIP") and status.get("phase") not in TERMINAL_PHASES:
                taken.add(status["podIP"])
        return allocate_ip(taken, self.pod_network.network)  # type: ignore[arg-type]

    def owns_ip(self, address: str | None) -> bool:
        """True for an address of this cluster's pod network (one from a previous network is not ours)."""
        return is_pod_ip(address, self.pod_network.network)

    def forget_old_logs(self, pod_dir: Path, container: str, keep: set[str]) -> None:
        """Keep the logs of the current and the previous instance only, as the kubelet does."""
        names = {container_id.rsplit("/", 1)[-1] + ".log" for container_id in keep}
        for path in (pod_dir / "logs" / container).glob("*.log*"):
            current = path.name if path.suffix == ".log" else path.name.rsplit(".", 1)[0]  # 123.log.2: of 123.log
            if current not in names:
                path.unlink(missing_ok=True)
                self.logs.live.pop(path, None)

    # -- the sync loop -------------------------------------------------------------------------

    def sync(self, events: list[WatchEvent]) -> None:
        """Bind unscheduled pods, start new ones, stop deleted ones (one pass over the node's pods)."""
        relevant = (self.pods.key, self.claims.key, self.node.nodes.key)  # the node: cordoned or not
        if events and not any(event.key in relevant for event in events):
            return
        present: set[str] = set()
        for entry in self.cluster.store.list(self.pods.key)[0]:
            pod = json.loads(entry.raw)
            metadata, spec = pod["metadata"], pod.get("spec") or {}
            present.add(metadata["uid"])
            if not spec.get("nodeName"):
                if not metadata.get("deletionTimestamp"):
                    self._schedule(pod)
                continue
            if spec["nodeName"] != NODE_NAME:
                continue
            self._sync_pod(pod)
        for uid in [uid for uid in self.workers if uid not in present and uid not in self._deleting]:
            self._deleting.add(uid)
            self.spawn(self._finish(self.workers[uid], grace=0))
        for event in events:
            metadata = event.entry.obj["metadata"]
            if event.type != "DELETED":
                continue
            if event.key == self.pods.key and metadata.get("uid", "") not in self.workers:
                self._remove_pod_dir(metadata.get("uid", ""))
            elif event.key == self.claims.key:
                # Dynamically provisioned volumes default to the Delete reclaim policy: the data goes
                # with the claim, so a new claim of the same name starts empty.
                shutil.rmtree(claim_dir(self.home, metadata.get("namespace", ""), metadata["name"]), ignore_errors=True)

    def _sync_pod(self, pod: dict[str, Any]) -> None:
        metadata = pod["metadata"]
        uid = metadata["uid"]
        worker = self.workers.get(uid)
        if metadata.get("deletionTimestamp"):
            if worker is None:
                self.cluster.finish_deletion(self.pods, metadata.get("namespace", ""), metadata["name"])
                self._remove_pod_dir(uid)
            elif uid not in self._deleting:
                self._deleting.add(uid)
                self.spawn(self._finish(worker, grace=float(metadata.get("deletionGracePeriodSeconds") or 0)))
            return
        if worker is not None:
            worker.pod = pod
            return
        if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
            return
        worker = PodWorker(self, pod)
        self.workers[uid] = worker
        run = asyncio.create_task(worker.run(), name=f"pod {metadata.get('namespace')}/{metadata['name']}")
        self._runs[uid] = run
        run.add_done_callback(lambda task: self._ran(uid, task))

    def _ran(self, uid: str, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("pod worker %s failed", uid, exc_info=task.exception())
        if uid not in self._deleting:
            self.workers.pop(uid, None)
            self._runs.pop(uid, None)

    async def _finish(self, worker: PodWorker, grace: float) -> None:
        """Graceful deletion: stop the containers, then remove the pod object and its directory."""
        try:
            await worker.stop(grace)
            run = self._runs.get(worker.uid)
            if run is not None:
                await asyncio.gather(run, return_exceptions=True)
            current = self.cluster.find(self.pods, worker.namespace, worker.name)
            if current is not None and current["metadata"]["uid"] == worker.uid:
                self.cluster.finish_deletion(self.pods, worker.namespace, worker.name)
            self._remove_pod_dir(worker.uid)
        finally:
            self.workers.pop(worker.uid, None)
            self._runs.pop(worker.uid, None)
            self._deleting.discard(worker.uid)

    def _remove_pod_dir(self, uid: str) -> None:
        pod_dir = self.pods_dir / uid
        for path in [p for p in self.logs.live if p.is_relative_to(pod_dir)]:
            del self.logs.live[path]
        shutil.rmtree(pod_dir, ignore_errors=True)

    # -- scheduling ----------------------------------------------------------------------------

    def _schedule(self, pod: dict[str, Any]) -> None:
        """Bind the pod to the node once every PersistentVolumeClaim it uses exists (and mark those Bound)."""
        metadata = pod["metadata"]
        namespace, name = metadata.get("namespace", "default"), metadata["name"]
        claim_names = [
            volume["persistentVolumeClaim"].get("claimName", "")
            for volume in pod["spec"].get("volumes") or []
            if "persistentVolumeClaim" in volume
        ]
        claims = {claim: self.cluster.find(self.claims, namespace, claim) for claim in claim_names}
        missing = [claim for claim, found in claims.items() if found is None]
        node = self.cluster.find(self.node.nodes, "", NODE_NAME) or {}
        try:
            if (node.get("spec") or {}).get("unschedulable"):
                message = "0/1 nodes are available: 1 node(s) were unschedulable."
                if self._set_scheduled(pod, False, "Unschedulable", message):
                    self.cluster.record_event(
                        pod, "FailedScheduling", message, event_type="Warning", component="default-scheduler"
                    )
                return
            if missing:
                message = f'0/1 nodes are available: persistentvolumeclaim "{missing[0]}" not found.'
                if self._set_scheduled(pod, False, "Unschedulable", message):
                    self.cluster.record_event(
                        pod, "FailedScheduling", message, event_type="Warning", component="default-scheduler"
                    )
                return
            for claim in claims.values():
                self._bind_claim(claim)  # type: ignore[arg-type]
            bound = self.cluster.bind_pod(namespace, name, NODE_NAME)
            self._set_scheduled(bound, True)
            self.cluster.record_event(
                bound,
                "Scheduled",
                f"Successfully assigned {namespace}/{name} to {NODE_NAME}",
                component="default-scheduler",
            )
        except ApiError as exc:
            log.info("scheduler: pod %s/%s not bound: %s", namespace, name, exc.message)

    def _set_scheduled(self, pod: dict[str, Any], ok: bool, reason: str = "", message: str = "") -> bool:
        """Write the PodScheduled condition; False if it already said this."""
        condition = {"type": "PodScheduled", "status": "True" if ok else "False", "lastProbeTime": None}
        condition |= {"reason": reason, "message": message} if reason else {}
        status = pod.setdefault("status", {})
        old = status.get("conditions") or []
        if any({**c, "lastTransitionTime": None} == {**condition, "lastTransitionTime": None} for c in old):
            return False
        status["conditions"] = merge_conditions([c for c in old if c.get("type") != "PodScheduled"], [condition], now())
        metadata = pod["metadata"]
        self.cluster.replace(
            self.pods,
            "v1",
            metadata.get("namespace", "default"),
            metadata["name"],
            pod,
            subresource="status",
            user_agent="default-scheduler",
        )
        return True

    def _bind_claim(self, claim: dict[str, Any]) -> None:
        """A claim's data lives in a directory of the node: bind it on first use (WaitForFirstConsumer).

        As a dynamic provisioner and the PV controller would, the claim names its volume `pvc-<uid>`
        (what `kubectl get pvc` and `describe pvc` read, with the capacity) and says the binding is done.
        """
        if (claim.get("status") or {}).get("phase") == "Bound":
            return
        metadata = claim["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        spec = claim.setdefault("spec", {})
        if not spec.get("volumeName"):
            spec["volumeName"] = f"pvc-{metadata['uid']}"
            annotations = metadata.setdefault("annotations", {})
            annotations.update(
                {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes"}
            )
            claim = self.cluster.replace(
                self.claims, "v1", namespace, name, claim, user_agent="kube-controller-manager"
            ).obj
            spec = claim["spec"]
        claim["status"] = {
            "phase": "Bound",
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "capacity": {"storage": ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")},
        }
        self.cluster.replace(self.claims, "v1", namespace, name, claim, subresource="status", user_agent="kubelet")
