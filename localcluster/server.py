"""The localcluster server process: API server and controllers on one event loop.

Run by `lab up` as `python -m localcluster.server` in its own session; configuration comes from the
environment (see `Settings`). It binds its port before writing the kubeconfig and state file, so a
client that finds the state file can connect at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from logging.handlers import RotatingFileHandler
from typing import Any

import uvicorn
import yaml

from localcluster import state
from localcluster.api.access import AccessControl
from localcluster.api.app import ApiConfig, create_app
from localcluster.api.cluster import SYSTEM_NAMESPACES, Cluster, now
from localcluster.api.openapi import openapi_routes
from localcluster.api.resources import ResourceRegistry, crd_status
from localcluster.api.schemas import SchemaIndex
from localcluster.api.service_network import kubernetes_service
from localcluster.api.validation import KnativeAdmission
from localcluster.certificates import ensure_certificate
from localcluster.controllers import start_controllers
from localcluster.controllers.knative import install_reference_config
from localcluster.controllers.rbac import ensure_bootstrap_policy
from localcluster.kubelet import Kubelet, LogLimits
from localcluster.network import ProxyLimits, ServiceProxy, ServiceRules
from localcluster.network.mesh import webhook as istio_webhook
from localcluster.network.mesh.injection import SidecarInjector
from localcluster.settings import Settings
from localcluster.store import Store

log = logging.getLogger("localcluster")


def bind(host: str, port: int) -> socket.socket:
    """Listen on host:port (0: any free port), refusing anything but a loopback address."""
    if not host.startswith("127.") and host != "localhost":
        raise SystemExit(f"localcluster listens on loopback addresses only (127.0.0.0/8), not {host}")
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it Nagle's algorithm and delayed ACKs add ~40 ms to every response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(512)
    sock.setblocking(False)
    return sock


class ApiServer(uvicorn.Server):
    """uvicorn's Server, but SIGTERM and SIGINT only start a graceful exit.

    uvicorn captures these signals and raises them again once it has stopped serving, which would
    kill this process before it stops its pods, its proxy and its store. Here they are handled on
    the event loop instead, and `serve()` goes on to its clean-up.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.handle_exit, signum, None)
        try:
            yield
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)


def previous_port(settings: Settings) -> int:
    """The port this `$LAB_HOME` last served on, so a restart keeps open notebooks' kubeconfig valid."""
    try:
        config = yaml.safe_load(settings.kubeconfig_path.read_text())
        return int(config["clusters"][0]["cluster"]["server"].rsplit(":", 1)[1])
    except (OSError, ValueError, KeyError, IndexError, TypeError, yaml.YAMLError):
        return 0


def bind_preferred(settings: Settings) -> socket.socket:
    """The configured port, else the previous one if it is still free, else any free port."""
    if settings.port == 0 and (port := previous_port(settings)):
        try:
            return bind(settings.host, port)
        except SystemExit:
            pass
    return bind(settings.host, settings.port)


def bootstrap(cluster: Cluster) -> None:
    """The objects a new cluster has: its system namespaces, the workshop's namespace, the CRDs it serves and
    the default RBAC policy."""
    namespaces = cluster.registry.get("", "namespaces")
    for name in SYSTEM_NAMESPACES:
        if cluster.find(namespaces, "", name) is None:
            cluster.create(namespaces, "v1", "", {"metadata": {"name": name}}, user_agent="localcluster/bootstrap")
    crds = cluster.registry.get("apiextensions.k8s.io", "customresourcedefinitions")
    for manifest in cluster.registry.crds:
        name = manifest["metadata"]["name"]
        live = cluster.find(crds, "", name)
        if live is None:
            live = cluster.create(crds, "v1", "", copy.deepcopy(manifest), user_agent="localcluster/bootstrap").obj
        elif live.get("spec") != manifest["spec"]:
            # The official CRDs were upgraded: the stored objects follow, as `kubectl apply` of them would.
            upgraded = copy.deepcopy(manifest)
            upgraded["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
            live = cluster.replace(crds, "v1", "", name, upgraded, user_agent="localcluster/bootstrap").obj
        status = crd_status(manifest, now())
        if _without_times(live.get("status")) != _without_times(status):
            cluster.replace(crds, "v1", "", name, {**live, "status": status}, subresource="status")
    ensure_bootstrap_policy(cluster)


def repair_service_allocations(cluster: Cluster) -> None:
    """Give Services stored before cluster IPs and node ports were allocated theirs (upstream's repair loop)."""
    services = cluster.registry.get("", "services")
    for entry in cluster.store.list(services.key, None)[0]:
        spec = entry.obj.get("spec") or {}
        lacks_ip = spec.get("type") != "ExternalName" and not spec.get("clusterIP")
        lacks_ports = spec.get("type") in ("NodePort", "LoadBalancer") and not all(
            port.get("nodePort") for port in spec.get("ports") or []
        )
        if lacks_ip or lacks_ports:
            metadata = entry.obj["metadata"]
            service = json.loads(entry.raw)
            cluster.replace(
                services, "v1", metadata["namespace"], metadata["name"], service, user_agent="kube-apiserver"
            )


def _without_times(status: dict[str, Any] | None) -> Any:
    if not status:
        return None
    conditions = [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions", [])]
    return {**status, "conditions": conditions}


def ensure_kubernetes_service(cluster: Cluster, host: str, port: int) -> None:
    """`default/kubernetes` and its endpoints point at this API server, as the bootstrap controller keeps them."""
    registry = cluster.registry
    kinds = (("", "services"), ("", "endpoints"), ("discovery.k8s.io", "endpointslices"))
    for (group, plural), manifest in zip(kinds, kubernetes_service(host, port), strict=True):
        resource_type = registry.get(group, plural)
        version = resource_type.storage_version
        live = cluster.find(resource_type, "default", "kubernetes")
        if live is None:
            cluster.create(resource_type, version, "default", manifest, user_agent="kube-apiserver")
            continue
        # The API port may have changed since the last start: point the objects at this one.
        wanted = {**live, **{key: value for key, value in manifest.items() if key not in ("metadata", "spec")}}
        if "spec" in manifest:
            wanted["spec"] = {**live["spec"], **manifest["spec"]}
        cluster.replace(resource_type, version, "default", "kubernetes", wanted, user_agent="kube-apiserver")


def build(settings: Settings, token: str, server_address: str, kubelet: Kubelet | None = None) -> tuple[Cluster, Any]:
    """The cluster state and its ASGI app, without listening (tests drive the app directly too).

    The app's `state.access` is its AccessControl (who may do what; the ServiceAccount token signer).
    """
    registry = ResourceRegistry.load(settings.schemas_dir)
    schemas = SchemaIndex(registry)
    store = Store(settings.database_path, history=settings.watch_history)
    cluster = Cluster(store, registry, schemas)
    cluster.mutating_admission.append(SidecarInjector(store))
    cluster.validating_admission.append(istio_webhook.validate)
    KnativeAdmission(store).register(cluster)
    bootstrap(cluster)
    repair_service_allocations(cluster)
    install_reference_config(cluster, settings.shared_dir / "reference")
    access = AccessControl.for_cluster(cluster, token, settings.service_account_key_path)
    config = ApiConfig(
        server_address=server_address,
        max_body_bytes=settings.max_body_bytes,
        home=str(settings.home),
        log_path=str(settings.server_log_path),
    )
    routes = [*openapi_routes(schemas), *(kubelet.routes if kubelet else [])]
    app = create_app(cluster, config, access, extra_routes=routes, read_logs=kubelet.read_logs if kubelet else None)
    app.state.access = access
    return cluster, app


async def serve(settings: Settings) -> None:
    state.ensure_home(settings)
    token = state.token(settings)
    sock = bind_preferred(settings)
    host, port = sock.getsockname()[:2]
    log_limits = LogLimits(settings.log_max_bytes, settings.log_max_files)
    kubelet = Kubelet(settings.home, api_host=host, api_port=port, log_limits=log_limits)
    cluster, app = build(settings, token, f"{host}:{port}", kubelet)
    ensure_kubernetes_service(cluster, host, port)
    access: AccessControl = app.state.access
    url = f"https://{host}:{port}"
    tls = ensure_certificate(settings.pki_dir)
    state.write_kubeconfig(settings, url, token, tls.ca_path)
    server = ApiServer(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            # kubectl exec/attach/port-forward are WebSockets. wsproto, since port-forward's subprotocol
            # `SPDY/3.1+portforward.k8s.io` is no RFC 7230 token and the `websockets` library refuses it.
            ws="wsproto",
            # h11 as before httptools came into the environment (for the bookstore's servers): the API
            # server's answers to malformed requests stay what its tests and clients know.
            http="h11",
            timeout_graceful_shutdown=2,
            ssl_certfile=str(tls.cert_path),
            ssl_keyfile=str(tls.key_path),
        )
    )
    controllers = start_controllers(cluster, root_ca=tls.ca_path.read_text())
    limits = ProxyLimits(
        header_timeout=settings.proxy_header_timeout,
        idle_timeout=settings.proxy_idle_timeout,
        max_connections_per_client=settings.proxy_max_connections_per_client,
    )
    proxy = ServiceProxy.for_store(cluster.store, host=host, limits=limits)
    await proxy.start()
    rules = ServiceRules(cluster.store, settings.service_rules_path, proxy.address)
    rules.write()  # before any pod starts: a pod the rules do not list sends everything to the proxy
    following_rules = asyncio.create_task(rules.follow(), name="service-rules")
    kubelet.start(cluster, proxy_url=proxy.url, service_rules=str(rules.path), tokens=access.tokens)
    state.write_state(
        settings, state.ServerState(os.getpid(), host, port, str(settings.home), time.time(), proxy=proxy.url)
    )
    log.info("localcluster listening on %s, service proxy on %s", url, proxy.url)
    try:
        await server.serve(sockets=[sock])
    finally:
        await kubelet.stop()
        following_rules.cancel()
        await proxy.stop()
        for task in controllers:
            task.cancel()
        await asyncio.gather(*controllers, return_exceptions=True)
        cluster.store.close()
        state.clear_state(settings, os.getpid())


class ServerLogHandler(RotatingFileHandler):
    """The server's log file, rotated by size; the process's stdout and stderr follow it to each new file.

    `lab up` points them at the log, and whatever is written there directly (a traceback from a crash)
    keeps landing in the current file after a rotation.
    """

    def _open(self) -> io.TextIOWrapper:
        stream = super()._open()
        for descriptor in (1, 2):
            os.dup2(stream.fileno(), descriptor)
        return stream


def configure_logging(settings: Settings) -> None:
    """State changes at INFO into the rotated server log; the HTTP clients' line per request stays out.

    httpx logs every request at INFO, which for the kubelet's probes is a line per probe per pod.
    """
    handler = ServerLogHandler(
        settings.server_log_path, maxBytes=settings.log_max_bytes, backupCount=settings.log_max_files - 1
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def main() -> None:
    settings = Settings.from_env()
    configure_logging(settings)
    try:
        asyncio.run(serve(settings))
    except state.StateError as exc:
        sys.exit(str(exc))


if __name__ == "__main__":
    main()
