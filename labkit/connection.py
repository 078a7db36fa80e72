"""`labkit.connect()`: the Kubernetes APIs of the notebook's cluster, and HTTP into its service network.

Where the cluster is, in order:

1. a kubeconfig context, when one is asked for (`connect(context=...)`, LAB_CONTEXT) or a kubeconfig
   is set (KUBECONFIG); without KUBECONFIG the context is looked up in `~/.kube/config` and in
   localcluster's kubeconfig;
2. the pod's service account, when the notebook runs in a pod of a real cluster;
3. localcluster, the default: `$LAB_HOME/kubeconfig` and the service proxy of the running server.

On localcluster `http` sends `http://` URLs through the service proxy, which resolves short names
(`http://stock/api/books`) in the connection's namespace; on a real cluster it goes direct (cluster
DNS resolves them) and honours the environment's proxy settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from labkit.settings import Settings

if TYPE_CHECKING:
    from kubernetes import client

#: How long a service call may take before `http` gives up (a purchase crosses several services).
HTTP_TIMEOUT = 30.0
_DEFAULT_KUBECONFIG = Path("~/.kube/config")


class ClusterUnavailable(ConnectionError):
    """No cluster to connect to (localcluster not running, no usable kubeconfig), said in one line."""


@dataclass(frozen=True)
class Connection:
    """The Kubernetes APIs, the namespace the labs work in, and HTTP routed like a pod's."""

    core: client.CoreV1Api
    apps: client.AppsV1Api
    custom: client.CustomObjectsApi
    namespace: str
    http: httpx.Client
    #: Where the cluster came from: "localcluster", "kubeconfig" or "in-cluster".
    source: str

    def close(self) -> None:
        """Close the HTTP client and the API client's connection pool."""
        self.http.close()
        self.core.api_client.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def connect(context: str | None = None, *, namespace: str | None = None) -> Connection:
    """Connect to the notebook's cluster (see the module docstring for which one) and namespace.

    Raises ClusterUnavailable with what to do when there is nothing to connect to.
    """
    settings = Settings.from_env()
    context = context or settings.context
    namespace = namespace or settings.namespace
    if context is None and settings.kubeconfig is None and _in_a_pod():
        return _in_cluster(namespace)
    if context is None and settings.kubeconfig is None:
        return _localcluster(namespace)
    return _from_kubeconfig(settings.kubeconfig, context, namespace)


def _in_a_pod() -> bool:
    from kubernetes.config.incluster_config import SERVICE_HOST_ENV_NAME, SERVICE_TOKEN_FILENAME

    return bool(os.environ.get(SERVICE_HOST_ENV_NAME)) and Path(SERVICE_TOKEN_FILENAME).exists()


def _in_cluster(namespace: str) -> Connection:
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException as exc:
        raise ClusterUnavailable(f"cannot use this pod's service account: {exc}") from exc
    # In a pod, cluster DNS resolves service names; the pod's own proxy settings (if any) apply.
    http = httpx.Client(timeout=HTTP_TIMEOUT)
    return _connection(client.ApiClient(configuration), namespace, http, "in-cluster")


def _localcluster(namespace: str) -> Connection:
    from kubernetes import config

    from localcluster import state
    from localcluster.settings import Settings as ClusterSettings

    cluster_settings = ClusterSettings.from_env()
    try:
        server = state.read_state(cluster_settings)
    except state.StateError as exc:
        raise ClusterUnavailable(str(exc)) from exc
    if server is None:
        raise ClusterUnavailable(
            f"localcluster is not running: start it with `lab up` (LAB_HOME={cluster_settings.home})"
        )
    if not server.proxy:
        raise ClusterUnavailable("localcluster runs without its service proxy: restart it with `lab down && lab up`")
    try:
        api = config.new_client_from_config(config_file=str(cluster_settings.kubeconfig_path), persist_config=False)
    except (OSError, config.ConfigException) as exc:
        raise ClusterUnavailable(
            f"localcluster's kubeconfig {cluster_settings.kubeconfig_path} is unusable ({exc}): "
            "restart it with `lab down && lab up`"
        ) from exc
    return _connection(api, namespace, _through_proxy(server.proxy, namespace), "localcluster")


def _from_kubeconfig(kubeconfig: Path | None, context: str | None, namespace: str) -> Connection:
    from kubernetes import config

    paths = [kubeconfig] if kubeconfig else [_DEFAULT_KUBECONFIG.expanduser(), _localcluster_kubeconfig()]
    try:
        api = config.new_client_from_config(
            config_file=os.pathsep.join(str(p) for p in paths), context=context, persist_config=False
        )
    except (OSError, config.ConfigException) as exc:
        where = " or ".join(str(p) for p in paths)
        wanted = f"context {context!r}" if context else "its current context"
        raise ClusterUnavailable(f"cannot use {wanted} of {where}: {exc}") from exc
    proxy = _localcluster_proxy_for(api.configuration.host)
    http = _through_proxy(proxy, namespace) if proxy else httpx.Client(timeout=HTTP_TIMEOUT)
    return _connection(api, namespace, http, "kubeconfig")


def _localcluster_kubeconfig() -> Path:
    from localcluster.settings import Settings as ClusterSettings

    return ClusterSettings.from_env().kubeconfig_path


def _localcluster_proxy_for(api_host: str) -> str | None:
    """The service proxy's URL if `api_host` is the running localcluster (a kubeconfig may point at it)."""
    from localcluster import state
    from localcluster.settings import Settings as ClusterSettings

    try:
        server = state.read_state(ClusterSettings.from_env())
    except state.StateError:
        return None
    return server.proxy if server is not None and server.url == api_host.rstrip("/") else None


def _through_proxy(proxy_url: str, namespace: str) -> httpx.Client:
    """`http://` URLs go through the service proxy; the proxy URL's user tells it the namespace.

    The user name travels as Proxy-Authorization, which only the proxy sees, so no service gets a
    header it did not ask for. `https://` URLs go direct: cluster services speak plain HTTP.
    """
    authority = proxy_url.split("://", 1)[-1]
    transport = httpx.HTTPTransport(proxy=f"http://{namespace}@{authority}")
    return httpx.Client(mounts={"http://": transport}, trust_env=False, timeout=HTTP_TIMEOUT)


def _connection(api: client.ApiClient, namespace: str, http: httpx.Client, source: str) -> Connection:
    from kubernetes import client

    return Connection(
        core=client.CoreV1Api(api),
        apps=client.AppsV1Api(api),
        custom=client.CustomObjectsApi(api),
        namespace=namespace,
        http=http,
        source=source,
    )
