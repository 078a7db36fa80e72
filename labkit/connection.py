"""`labkit.connect()`: the Kubernetes APIs of the notebook's cluster, and HTTP into its service network.

Where the cluster is, in order:

1. a kubeconfig context, when one is asked for (`connect(context=...)`, LAB_CONTEXT) or a kubeconfig
   is set (KUBECONFIG); without KUBECONFIG the context is looked up in `~/.kube/config` and in
   localcluster's kubeconfig;
2. the pod's service account, when the notebook runs in a pod of a real cluster;
3. the real cluster `lab up --target cluster` recorded in `$LAB_HOME`;
4. localcluster, the default: `$LAB_HOME/kubeconfig` and the service proxy of the running server.

On localcluster `http` sends `http://` URLs through the service proxy, which resolves short names
(`http://stock/api/books`) in the connection's namespace; in a pod of a real cluster it goes direct
(cluster DNS resolves them) and honours the environment's proxy settings. From outside a real cluster
(`lab up --target cluster`), Service names go through the API server's service proxy and every other
host (Knative and Istio hosts, the ingress gateway's own name) to the ingress gateway, its Host kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
        target = _recorded_target()
        if target is not None:
            return _to_target(target, namespace)
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


def _recorded_target():  # -> localcluster.state.ClusterTarget | None
    from localcluster import state
    from localcluster.settings import Settings as ClusterSettings

    try:
        return state.read_target(ClusterSettings.from_env())
    except state.StateError as exc:
        raise ClusterUnavailable(str(exc)) from exc


def _to_target(target, namespace: str) -> Connection:  # target: localcluster.state.ClusterTarget
    connection = _from_kubeconfig(Path(target.kubeconfig) if target.kubeconfig else None, target.context, namespace)
    connection.http.close()
    http = httpx.Client(transport=ClusterTransport(connection.core.api_client, target.ingress), timeout=HTTP_TIMEOUT)
    return _connection(connection.core.api_client, namespace, http, "kubeconfig")


class ClusterTransport(httpx.BaseTransport):
    """HTTP into a real cluster from outside it: Services through the API server's service proxy
    (`/api/v1/namespaces/<ns>/services/<name>:<port>/proxy/<path>`, with the kubeconfig's credentials),
    every other host to the ingress gateway (kind maps it to a host port), its Host header kept so
    Knative and Istio route by it."""

    def __init__(self, api: client.ApiClient, ingress: str) -> None:
        configuration = api.configuration
        self.api_host = configuration.host.rstrip("/")
        self.ingress = ingress.rstrip("/")
        authorization = configuration.get_api_key_with_prefix("authorization")
        self.headers = {"authorization": authorization} if authorization else {}
        verify: Any = configuration.ssl_ca_cert or configuration.verify_ssl
        cert = (configuration.cert_file, configuration.key_file) if configuration.cert_file else None
        self.inner = httpx.HTTPTransport(verify=verify, cert=cert, trust_env=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        service = _service_of(host)
        if service is not None:
            name, namespace = service
            port = request.url.port or 80
            path = request.url.raw_path.decode()
            url = f"{self.api_host}/api/v1/namespaces/{namespace}/services/{name}:{port}/proxy{path}"
            headers = {**dict(request.headers), **self.headers}
            headers.pop("host", None)
            forwarded = httpx.Request(request.method, url, headers=headers, content=request.content)
        else:
            if not self.ingress:
                raise httpx.ConnectError(
                    f"{host} is not a Service and no ingress gateway is reachable from here: "
                    "`lab up --target cluster --ingress URL` (infra/cluster/bootstrap.py prints it)"
                )
            url = f"{self.ingress}{request.url.raw_path.decode()}"
            forwarded = httpx.Request(request.method, url, headers=dict(request.headers), content=request.content)
        return self.inner.handle_request(forwarded)

    def close(self) -> None:
        self.inner.close()


def _service_of(host: str) -> tuple[str, str] | None:
    """(name, namespace) of a cluster Service host (`stock.bookstore`, `stock.bookstore.svc.cluster.local`).

    Short names (`stock`) are resolved in the connection's namespace by the caller's Settings; the
    ingress gateway's own Service counts as ingress, so requests to it keep their Host."""
    parts = host.split(".")
    if host.endswith(".svc.cluster.local"):
        parts = parts[:-3]
    elif host.endswith(".svc"):
        parts = parts[:-1]
    if len(parts) == 1:
        from labkit.settings import Settings

        parts.append(Settings.from_env().namespace)
    if len(parts) != 2 or parts[0] == "istio-ingressgateway":
        return None
    return parts[0], parts[1]


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
